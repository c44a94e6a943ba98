-- Options of require('bgagents').setup{}: one schema (type, default,
-- description) from which validation, defaults and the documentation come.
-- An option that fails validation is reported by its full name
-- ("list.height") and keeps its default; the others still apply.
local M = {}

---@class bgagents.OptionSpec
---@field type string|string[] Lua type(s) accepted ("string", "table", "function", …)
---@field default any
---@field description string
---@field values? any[] the only accepted values
---@field list_of? string the type of every element of a list
---@field fields? table<string, bgagents.OptionSpec> nested options (type "table")
---@field check? fun(v: any): string|nil what is wrong with an accepted value

-- A key of the list: a string, or false to disable it.
local function key_check(v)
  if v == true then
    return 'must be a string (a key) or false, not true'
  end
end

-- Every entry of notify.states must be a state of an agent.
local function states_check(v)
  local states = require('bgagents.protocol').states
  for _, st in ipairs(v) do
    if not vim.tbl_contains(states, st) then
      return string.format('has an unknown state %q (states: %s)', st, table.concat(states, ', '))
    end
  end
end

---@type table<string, bgagents.OptionSpec>
M.schema = {
  cmd = {
    type = 'table',
    list_of = 'string',
    default = { 'bgagents' },
    description = 'The bgagents executable and any leading arguments; `lsp`, `version` and `doctor` are appended.',
  },
  cmd_env = {
    type = 'table',
    default = {},
    description = 'Extra environment variables for bgagents (e.g. { BGAGENTS_HOME = "/tmp/bg" }).',
  },
  attach = {
    type = 'boolean',
    default = true,
    description = 'Start `bgagents lsp` for buffers of files inside git repositories (one client per repository root), so the code action "Send to background agent" appears.',
  },
  should_attach = {
    type = { 'function', 'nil' },
    default = nil,
    description = 'function(bufnr) -> boolean: attach to this buffer? Called only for files inside git repositories.',
  },
  agents = {
    type = 'table',
    list_of = 'string',
    default = {},
    description = 'Agent names offered by `spawn`, `send` and the code action (vim.ui.select when more than one). Empty: the agents the daemon says the repository can run (see ask_agent).',
  },
  models = {
    type = 'table',
    default = {},
    description = 'Models to choose from, per agent name, besides the agent\'s configured model: { claude = { "opus", "sonnet" } }. Empty: the agent\'s configured model.',
  },
  ask_agent = {
    type = 'boolean',
    default = true,
    description = 'Without `agents`, `spawn`, `send` and the code action ask (vim.ui.select) which of the agents the repository can run (bgagents/agents: configured ones and installed CLIs, the default first); false: the repository\'s default agent, no question. `--agent` always wins.',
  },
  ask_task = {
    type = 'boolean',
    default = true,
    description = 'The code action and `send` without a task ask for one with vim.ui.input (empty: the daemon\'s default task).',
  },
  window = {
    type = 'string',
    default = 'botright split',
    description = 'Ex command that opens the window of a diff or log buffer: "botright split", "vsplit", "tabnew", "edit" …',
  },
  open = {
    type = 'table',
    default = {},
    description = 'What `open` does.',
    fields = {
      cmd = {
        type = { 'nil', 'string', 'table', 'function' },
        default = nil,
        description = 'nil: a new tabpage with :tcd to the worktree. A string (run by the shell) or a list (argv) in which {path} and {name} are replaced, started detached, e.g. { "kitty", "--directory", "{path}", "nvim" }; or function(path, agent).',
      },
      edit = {
        type = 'boolean',
        default = true,
        description = 'In the new tabpage, :edit the worktree directory (your file explorer shows it).',
      },
    },
  },
  list = {
    type = 'table',
    default = {},
    description = 'The agent list window (`list`).',
    fields = {
      window = {
        type = 'string',
        default = 'botright 12split',
        description = 'Ex command that opens the list window.',
      },
      refresh_ms = {
        type = 'number',
        default = 15000,
        description = 'Redraw the list this often while it is shown, so ages stay current (0: only when an agent changes).',
      },
      keys = {
        type = 'table',
        default = {},
        description = 'Keys on a row of the list: a key (string), or false to disable one.',
        fields = {
          open = { type = { 'string', 'boolean' }, default = '<CR>', check = key_check, description = 'Open the worktree (`open`).' },
          diff = { type = { 'string', 'boolean' }, default = 'd', check = key_check, description = 'Show the diff.' },
          log = { type = { 'string', 'boolean' }, default = 'l', check = key_check, description = 'Show the log, following it.' },
          message = { type = { 'string', 'boolean' }, default = 'm', check = key_check, description = 'Send a follow-up message.' },
          message_allow = { type = { 'string', 'boolean' }, default = 'A', check = key_check, description = 'Send a follow-up that allows the tools the agent was refused (`msg!`).' },
          cancel = { type = { 'string', 'boolean' }, default = 'c', check = key_check, description = 'Cancel the agent.' },
          merge = { type = { 'string', 'boolean' }, default = 'M', check = key_check, description = 'Merge its branch.' },
          discard = { type = { 'string', 'boolean' }, default = 'D', check = key_check, description = 'Discard it (asks before forcing).' },
          review = { type = { 'string', 'boolean' }, default = 'R', check = key_check, description = 'Start a reviewer on its work (`review`).' },
          findings = { type = { 'string', 'boolean' }, default = 'f', check = key_check, description = 'Put the findings of its latest review in the quickfix list (`findings`).' },
          push = { type = { 'string', 'boolean' }, default = 'P', check = key_check, description = 'Push its branch (`push`).' },
          pull_request = { type = { 'string', 'boolean' }, default = 'p', check = key_check, description = 'Push its branch and open a pull request (`pr`).' },
          integrate = { type = { 'string', 'boolean' }, default = 'I', check = key_check, description = 'Integrate the variants of its fan-out group (`integrate`).' },
          refresh = { type = { 'string', 'boolean' }, default = 'r', check = key_check, description = 'Reload the list from the daemon.' },
          close = { type = { 'string', 'boolean' }, default = 'q', check = key_check, description = 'Close the list.' },
          help = { type = { 'string', 'boolean' }, default = '?', check = key_check, description = 'Show the keys.' },
        },
      },
    },
  },
  notify = {
    type = 'table',
    default = {},
    description = 'vim.notify when an agent reaches one of these states.',
    fields = {
      enabled = { type = 'boolean', default = true, description = 'Notify at all.' },
      reviews = {
        type = 'boolean',
        default = true,
        description = 'Notify the verdict of a review on the reviewed agent when the review ends (with its finding count), instead of the reviewer finishing.',
      },
      conflicts = {
        type = 'boolean',
        default = true,
        description = 'Notify when an agent starts conflicting with another agent or its base branch (once per pair).',
      },
      states = {
        type = 'table',
        list_of = 'string',
        default = { 'succeeded', 'failed', 'needs_input', 'lost' },
        check = states_check,
        description = 'States that notify: any of succeeded, failed, needs_input, lost, cancelled, merged, discarded, running, queued, provisioning.',
      },
    },
  },
  statusline = {
    type = 'table',
    default = {},
    description = 'Symbols of require("bgagents").statusline().',
    fields = {
      active = { type = 'string', default = '▶', description = 'Queued, preparing or running.' },
      needs_input = { type = 'string', default = '?', description = 'Waiting for a follow-up.' },
      succeeded = { type = 'string', default = '✓', description = 'Finished, not merged or discarded yet.' },
      failed = { type = 'string', default = '✗', description = 'Failed or lost, not discarded yet.' },
    },
  },
}

local function types_of(spec)
  return type(spec.type) == 'table' and spec.type or { spec.type }
end

local function accepts(spec, v)
  for _, t in ipairs(types_of(spec)) do
    if type(v) == t then
      return true
    end
  end
  return false
end

-- Edit distance, to suggest the option a misspelt key meant.
local function distance(a, b)
  local prev = {}
  for j = 0, #b do
    prev[j] = j
  end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do
    keys[#keys + 1] = k
  end
  table.sort(keys)
  return keys
end

local function describe(v)
  if type(v) == 'string' then
    return string.format('%s %q', type(v), v)
  end
  return type(v)
end

-- build fills `out` from `user` per `schema`; problems go to `errors`.
local function build(schema, user, prefix, errors, out)
  if user ~= nil and type(user) ~= 'table' then
    errors[#errors + 1] = string.format('option %s must be a table, not %s', prefix ~= '' and prefix or 'setup{}', describe(user))
    user = nil
  end
  user = user or {}
  for _, key in ipairs(sorted_keys(user)) do
    if type(key) ~= 'string' or schema[key] == nil then
      local best, best_d
      for name in pairs(schema) do
        local d = distance(tostring(key), name)
        if d <= 2 and (best_d == nil or d < best_d) then
          best, best_d = name, d
        end
      end
      local valid = table.concat(sorted_keys(schema), ', ')
      errors[#errors + 1] = string.format(
        'unknown option %s%s%s (valid: %s)',
        prefix,
        tostring(key),
        best and string.format('; did you mean %s%s?', prefix, best) or '',
        valid
      )
    end
  end
  for _, key in ipairs(sorted_keys(schema)) do
    local spec = schema[key]
    local name = prefix .. key
    local v = user[key]
    if spec.fields then
      out[key] = {}
      build(spec.fields, v, name .. '.', errors, out[key])
    elseif v == nil then
      out[key] = vim.deepcopy(spec.default)
    elseif not accepts(spec, v) then
      errors[#errors + 1] = string.format(
        'option %s must be %s, not %s',
        name,
        table.concat(types_of(spec), ' or '),
        describe(v)
      )
      out[key] = vim.deepcopy(spec.default)
    elseif spec.list_of and not (require('bgagents.compat').islist(v) and #vim.tbl_filter(function(x)
      return type(x) ~= spec.list_of
    end, v) == 0) then
      errors[#errors + 1] = string.format('option %s must be a list of %ss', name, spec.list_of)
      out[key] = vim.deepcopy(spec.default)
    elseif spec.values and not vim.tbl_contains(spec.values, v) then
      errors[#errors + 1] = string.format('option %s must be one of %s', name, table.concat(spec.values, ', '))
      out[key] = vim.deepcopy(spec.default)
    elseif spec.check and spec.check(v) then
      errors[#errors + 1] = string.format('option %s %s', name, spec.check(v))
      out[key] = vim.deepcopy(spec.default)
    else
      out[key] = vim.deepcopy(v)
    end
  end
end

--- Validates user options against the schema.
---@param user table|nil
---@return table config every option, defaults filled in
---@return string[] errors one message per bad option, naming it
function M.validate(user)
  local errors, out = {}, {}
  build(M.schema, user, '', errors, out)
  if #out.cmd == 0 then
    errors[#errors + 1] = 'option cmd must name the bgagents executable'
    out.cmd = vim.deepcopy(M.schema.cmd.default)
  end
  return out, errors
end

-- The options in force; setup() replaces it.
M.values = M.validate(nil)

return M
