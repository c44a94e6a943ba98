-- The plugin's buffers: the agent list (redrawn whenever an agent changes),
-- diff buffers, log buffers that follow an agent live, and opening a
-- worktree in a new tabpage or an external command.
local client = require('bgagents.client')
local compat = require('bgagents.compat')
local config = require('bgagents.config')
local format = require('bgagents.format')
local protocol = require('bgagents.protocol')
local state = require('bgagents.state')

local M = {}

local ns = vim.api.nvim_create_namespace('bgagents')
local HEADER = 2 -- lines above the first agent row of the list

local function err(msg)
  vim.notify('bgagents: ' .. msg, vim.log.levels.ERROR, { title = 'bgagents' })
end

local highlights_defined = false
local function define_highlights()
  if highlights_defined then
    return
  end
  highlights_defined = true
  for group, link in pairs({
    BgAgentsTitle = 'Title',
    BgAgentsHeader = 'Comment',
    BgAgentsActive = 'DiagnosticInfo',
    BgAgentsNeedsInput = 'DiagnosticWarn',
    BgAgentsSucceeded = 'String',
    BgAgentsFailed = 'DiagnosticError',
    BgAgentsDone = 'Comment',
    BgAgentsApproved = 'String',
    BgAgentsChangesRequested = 'DiagnosticWarn',
    BgAgentsCommented = 'DiagnosticInfo',
    BgAgentsConflict = 'DiagnosticWarn',
    BgAgentsNote = 'Comment',
  }) do
    vim.cmd(string.format('highlight default link %s %s', group, link))
  end
end

local state_hl = {
  queued = 'BgAgentsActive',
  provisioning = 'BgAgentsActive',
  running = 'BgAgentsActive',
  needs_input = 'BgAgentsNeedsInput',
  succeeded = 'BgAgentsSucceeded',
  failed = 'BgAgentsFailed',
  lost = 'BgAgentsFailed',
  cancelled = 'BgAgentsDone',
  merged = 'BgAgentsDone',
  discarded = 'BgAgentsDone',
}

-- The highlight of each kind of note in the list's NOTES column.
local note_hl = {
  approve = 'BgAgentsApproved',
  request_changes = 'BgAgentsChangesRequested',
  comment = 'BgAgentsCommented',
  no_verdict = 'BgAgentsFailed',
  reviewing = 'BgAgentsActive',
  conflict = 'BgAgentsConflict',
}

--- A scratch buffer called `name`, made or reused; `fresh` is true when made.
local function scratch(name, filetype)
  local buf = vim.fn.bufnr('^' .. vim.fn.escape(name, '\\^$.*~[]') .. '$')
  local fresh = buf == -1
  if fresh then
    buf = vim.api.nvim_create_buf(false, true)
    vim.api.nvim_buf_set_name(buf, name)
  end
  vim.bo[buf].buftype = 'nofile'
  vim.bo[buf].bufhidden = 'wipe'
  vim.bo[buf].swapfile = false
  if filetype and vim.bo[buf].filetype ~= filetype then
    vim.bo[buf].filetype = filetype
  end
  return buf, fresh
end

local function set_lines(buf, first, last, lines)
  vim.bo[buf].modifiable = true
  vim.api.nvim_buf_set_lines(buf, first, last, false, lines)
  vim.bo[buf].modifiable = false
end

--- Shows `buf` in a window: the current tabpage's window that shows it
--- already, else a new one made by the Ex command `window`.
local function show(buf, window)
  for _, w in ipairs(vim.api.nvim_tabpage_list_wins(0)) do
    if vim.api.nvim_win_get_buf(w) == buf then
      vim.api.nvim_set_current_win(w)
      return w
    end
  end
  if window ~= 'edit' then
    vim.cmd(window)
  end
  -- `tabnew`, `new`, `vnew` … make an empty buffer that would be left over
  local old = vim.api.nvim_get_current_buf()
  vim.api.nvim_win_set_buf(0, buf)
  if window ~= 'edit' and old ~= buf and vim.api.nvim_buf_get_name(old) == ''
    and not vim.bo[old].modified and vim.api.nvim_buf_line_count(old) == 1
    and vim.api.nvim_buf_get_lines(old, 0, 1, false)[1] == '' and #vim.fn.win_findbuf(old) == 0 then
    pcall(vim.api.nvim_buf_delete, old, { force = true })
  end
  return vim.api.nvim_get_current_win()
end

--- `q`: closes the window, or on the last window wipes the buffer (no E444).
local function close_window()
  if #vim.api.nvim_list_wins() > 1 then
    return vim.cmd('close')
  end
  vim.cmd('bwipeout')
end
M.close_window = close_window

local function map(buf, lhs, fn, desc)
  if lhs and lhs ~= '' then
    vim.keymap.set('n', lhs, fn, { buffer = buf, nowait = true, silent = true, desc = desc })
  end
end

-- ---- The list ----------------------------------------------------------

-- buf -> { root, main, all, ids = { [lnum] = id } }
M.lists = {}
local timer

local function render_list(buf)
  local l = M.lists[buf]
  if not l or not vim.api.nvim_buf_is_valid(buf) then
    M.lists[buf] = nil
    return
  end
  local agents = format.grouped(state.list(not l.all and l.main or nil))
  local keys = config.values.list.keys
  local title = string.format(
    'bgagents: %s  (%s open, %s diff, %s log, %s message, %s cancel, %s merge, %s discard, %s review, %s findings, %s keys)',
    l.all and 'every repository' or l.main,
    keys.open or '-',
    keys.diff or '-',
    keys.log or '-',
    keys.message or '-',
    keys.cancel or '-',
    keys.merge or '-',
    keys.discard or '-',
    keys.review or '-',
    keys.findings or '-',
    keys.help or '-'
  )
  local lines = { title }
  local rows, marks = format.list_lines(agents, nil, function(id)
    local a = state.agents[id]
    return a and a.name or nil
  end)
  vim.list_extend(lines, rows)
  if #agents == 0 then
    lines[#lines + 1] = 'no agents yet: :BgAgents spawn TASK'
  end
  -- keep the cursor on the same agent
  local cursor_id
  local wins = vim.fn.win_findbuf(buf)
  if #wins > 0 then
    cursor_id = l.ids[vim.api.nvim_win_get_cursor(wins[1])[1]]
  end
  set_lines(buf, 0, -1, lines)
  l.ids = {}
  vim.api.nvim_buf_clear_namespace(buf, ns, 0, -1)
  vim.api.nvim_buf_add_highlight(buf, ns, 'BgAgentsTitle', 0, 0, -1)
  vim.api.nvim_buf_add_highlight(buf, ns, 'BgAgentsHeader', 1, 0, -1)
  for i, a in ipairs(agents) do
    local lnum = HEADER + i
    l.ids[lnum] = a.id
    vim.api.nvim_buf_add_highlight(buf, ns, state_hl[a.state] or 'Normal', lnum - 1, 0, #a.state)
    for _, m in ipairs(marks[i + 1] or {}) do
      vim.api.nvim_buf_add_highlight(buf, ns, note_hl[m[3]] or 'BgAgentsNote', lnum - 1, m[1], m[2])
    end
    if cursor_id == a.id then
      for _, w in ipairs(wins) do
        vim.api.nvim_win_set_cursor(w, { lnum, 0 })
      end
    end
  end
end

function M.render_lists()
  for buf in pairs(M.lists) do
    render_list(buf)
  end
end

state.subscribe(function()
  M.render_lists()
end)

local function ensure_timer()
  local ms = config.values.list.refresh_ms
  if timer or ms <= 0 then
    return
  end
  timer = compat.uv.new_timer()
  timer:start(ms, ms, vim.schedule_wrap(function()
    if next(M.lists) == nil then
      timer:stop()
      timer:close()
      timer = nil
      return
    end
    M.render_lists()
  end))
end

--- The agent on the cursor's row of a list buffer.
function M.agent_at_cursor()
  local l = M.lists[vim.api.nvim_get_current_buf()]
  if not l then
    return nil
  end
  local id = l.ids[vim.api.nvim_win_get_cursor(0)[1]]
  return id and state.agents[id] or nil
end

function M.refresh_list(buf)
  local l = M.lists[buf]
  if not l then
    return
  end
  client.request(l.root, protocol.requests.list, l.all and vim.empty_dict() or { repo = l.root }, function(e, result)
    if e then
      return err('list: ' .. e)
    end
    state.replace(result.agents, not l.all and l.main or nil)
    render_list(buf)
  end)
end

local function list_help()
  local keys = config.values.list.keys
  local lines = {}
  for _, k in ipairs({
    'open', 'diff', 'log', 'message', 'message_allow', 'cancel', 'merge', 'discard',
    'review', 'findings', 'push', 'pull_request', 'integrate', 'refresh', 'close', 'help',
  }) do
    if keys[k] then
      lines[#lines + 1] = string.format('%-6s %s', keys[k], config.schema.list.fields.keys.fields[k].description)
    end
  end
  vim.notify(table.concat(lines, '\n'), vim.log.levels.INFO, { title = 'bgagents list' })
end

--- Opens the list of the agents of `main` (every repository when `all`).
function M.open_list(root, main, all)
  define_highlights()
  local name = 'bgagents://list/' .. (all and 'all' or main)
  local buf, fresh = scratch(name, 'bgagentslist')
  vim.b[buf].bgagents_root = root
  vim.b[buf].bgagents_main = main
  M.lists[buf] = M.lists[buf] or { ids = {} }
  local l = M.lists[buf]
  l.root, l.main, l.all = root, main, all
  local win = show(buf, config.values.list.window)
  vim.wo[win].wrap = false
  vim.wo[win].cursorline = true
  vim.wo[win].number = false
  vim.wo[win].relativenumber = false
  vim.wo[win].spell = false
  render_list(buf)
  if fresh then
    local cmds = require('bgagents.commands')
    local keys = config.values.list.keys
    local function on_row(fn)
      return function()
        local a = M.agent_at_cursor()
        if not a then
          return err('no agent on this line')
        end
        fn(a)
      end
    end
    map(buf, keys.open, on_row(function(a) cmds.open(a.id, root) end), 'bgagents: open worktree')
    map(buf, keys.diff, on_row(function(a) cmds.diff(a.id, root) end), 'bgagents: diff')
    map(buf, keys.log, on_row(function(a) cmds.log(a.id, root) end), 'bgagents: log')
    map(buf, keys.message, on_row(function(a) cmds.msg(a.id, '', false, root) end), 'bgagents: follow-up message')
    map(buf, keys.message_allow, on_row(function(a) cmds.msg(a.id, '', true, root) end), 'bgagents: follow-up allowing refused tools')
    map(buf, keys.cancel, on_row(function(a) cmds.cancel(a.id, root) end), 'bgagents: cancel')
    map(buf, keys.merge, on_row(function(a) cmds.merge(a.id, {}, root) end), 'bgagents: merge')
    map(buf, keys.discard, on_row(function(a) cmds.discard(a.id, false, root, true) end), 'bgagents: discard')
    map(buf, keys.review, on_row(function(a) cmds.review(a.id, {}, root) end), 'bgagents: review')
    map(buf, keys.findings, on_row(function(a) cmds.findings(a.id, root) end), 'bgagents: review findings in quickfix')
    map(buf, keys.push, on_row(function(a) cmds.push(a.id, {}, root) end), 'bgagents: push')
    map(buf, keys.pull_request, on_row(function(a) cmds.pr(a.id, {}, root) end), 'bgagents: pull request')
    map(buf, keys.integrate, on_row(function(a) cmds.integrate({ a.id }, {}, root) end), 'bgagents: integrate the fan-out group')
    map(buf, keys.refresh, function() M.refresh_list(buf) end, 'bgagents: refresh')
    map(buf, keys.close, close_window, 'bgagents: close')
    map(buf, keys.help, list_help, 'bgagents: keys')
    vim.api.nvim_create_autocmd('BufWipeout', {
      buffer = buf,
      callback = function()
        M.lists[buf] = nil
      end,
    })
    if #vim.api.nvim_buf_get_lines(buf, 0, -1, false) > HEADER then
      vim.api.nvim_win_set_cursor(win, { math.min(HEADER + 1, vim.api.nvim_buf_line_count(buf)), 0 })
    end
  end
  ensure_timer()
  M.refresh_list(buf)
  return buf
end

-- ---- Diff --------------------------------------------------------------

local function agent_label(id, branch)
  return (branch and branch:match('^bgagents/(.+)$')) or id
end

local function named_buffer(kind, id, label, filetype)
  local name = string.format('bgagents://%s/%s', label, kind)
  local existing = vim.fn.bufnr('^' .. vim.fn.escape(name, '\\^$.*~[]') .. '$')
  if existing ~= -1 and vim.b[existing].bgagents_id ~= id then
    name = string.format('bgagents://%s.%s/%s', label, id, kind)
  end
  local buf, fresh = scratch(name, filetype)
  vim.b[buf].bgagents_id = id
  return buf, fresh
end

--- Shows a bgagents/diff result in a buffer with filetype diff.
---@param result bgagents.DiffResult
function M.show_diff(result, root, main)
  local buf, fresh = named_buffer('diff', result.id, agent_label(result.id, result.branch), 'diff')
  vim.b[buf].bgagents_root = root
  vim.b[buf].bgagents_main = main
  local lines = compat.split_lines(result.diff)
  if #lines == 0 then
    lines = { string.format('no changes on %s against %s', result.branch, (result.baseCommit or ''):sub(1, 12)) }
  end
  set_lines(buf, 0, -1, lines)
  show(buf, config.values.window)
  if fresh then
    map(buf, 'q', close_window, 'bgagents: close')
  end
  return buf
end

-- ---- Review findings ---------------------------------------------------

--- Puts the findings of review `r` of `agent` in the quickfix list (files
--- relative to the agent's worktree, else its repository) and opens it.
---@param agent bgagents.Agent
---@param r bgagents.Review
---@return integer count of findings
function M.show_findings(agent, r)
  local dir = agent.worktree
  if not dir or dir == '' or vim.fn.isdirectory(dir) == 0 then
    dir = agent.repo
  end
  local items = format.findings_items(r, dir)
  local title = string.format('bgagents: review of %s by %s: %s', agent.name, r.name or r.id, (r.verdict or '') ~= '' and format.verdict_text(r.verdict) or ('no verdict: ' .. (r.error or '')))
  if (r.summary or '') ~= '' then
    title = title .. ' — ' .. r.summary:gsub('\n', ' ')
  end
  vim.fn.setqflist({}, ' ', { title = title, items = items })
  if #items > 0 then
    vim.cmd('botright copen')
  end
  return #items
end

-- ---- Log ---------------------------------------------------------------

-- id -> { buf, root, next, pending, paging }
M.followers = {}

local function append(f, events)
  local buf = f.buf
  if not vim.api.nvim_buf_is_valid(buf) then
    return
  end
  local lines = {}
  for _, ev in ipairs(events) do
    vim.list_extend(lines, format.event_lines(ev))
  end
  if #lines == 0 then
    return
  end
  local count = vim.api.nvim_buf_line_count(buf)
  -- windows whose cursor is on the last line follow the new lines
  local tail = {}
  for _, w in ipairs(vim.fn.win_findbuf(buf)) do
    if vim.api.nvim_win_get_cursor(w)[1] == count then
      tail[#tail + 1] = w
    end
  end
  set_lines(buf, count, count, lines)
  for _, w in ipairs(tail) do
    vim.api.nvim_win_set_cursor(w, { vim.api.nvim_buf_line_count(buf), 0 })
  end
end

local fetch

-- take applies events in seq order, once each; a gap is filled with bgagents/log.
local function take(id, f, events)
  table.sort(events, function(a, b)
    return a.seq < b.seq
  end)
  local fresh = {}
  for i, ev in ipairs(events) do
    if ev.seq > f.next then
      append(f, fresh)
      for j = i, #events do
        f.pending[#f.pending + 1] = events[j]
      end
      return fetch(id, f)
    end
    if ev.seq == f.next then
      fresh[#fresh + 1] = ev
      f.next = ev.seq + 1
    end
  end
  append(f, fresh)
end

fetch = function(id, f, follow)
  f.paging = true
  client.request(f.root, protocol.requests.log, { id = id, from = f.next or 1, follow = follow or nil }, function(e, result)
    if M.followers[id] ~= f then
      return
    end
    if e then
      f.paging = false
      return append(f, { { kind = 'output', text = 'bgagents: log: ' .. e } })
    end
    f.next = f.next or 1
    take(id, f, result.events or {})
    f.next = math.max(f.next, result.next or f.next)
    if result.more then
      return fetch(id, f)
    end
    f.paging = false
    local pending = f.pending
    f.pending = {}
    if #pending > 0 then
      take(id, f, pending)
    end
  end)
end

--- bgagents/output: new events of a followed agent.
---@param params bgagents.OutputParams
function M.on_output(params)
  local f = M.followers[params.id]
  if not f then
    return
  end
  if f.paging or not f.next then
    vim.list_extend(f.pending, params.events or {})
    return
  end
  take(params.id, f, params.events or {})
end

--- The client of `root` exited: its followers stop until a new one runs.
function M.client_exited(root)
  for _, f in pairs(M.followers) do
    if f.root == root then
      f.stale = true
    end
  end
end

--- A new client of `root` is up: the log buffers that followed agents
--- through the old one follow them again, from where they were.
function M.resume(root)
  for id, f in pairs(M.followers) do
    if f.root == root and f.stale then
      if vim.api.nvim_buf_is_valid(f.buf) then
        f.stale = false
        f.paging = false
        fetch(id, f, true)
      else
        M.followers[id] = nil
      end
    end
  end
end

--- Opens the log of `agent` in a buffer that follows it live.
---@param agent bgagents.Agent
function M.show_log(agent, root, main)
  local buf, fresh = named_buffer('log', agent.id, agent.name, 'bgagentslog')
  vim.b[buf].bgagents_root = root
  vim.b[buf].bgagents_main = main
  show(buf, config.values.window)
  if not fresh and M.followers[agent.id] and M.followers[agent.id].buf == buf then
    return buf -- already following
  end
  set_lines(buf, 0, -1, { string.format('# %s (%s) on %s: %s', agent.name, agent.id, agent.branch, (agent.task:gsub('\n', ' '))) })
  local f = { buf = buf, root = root, next = nil, pending = {}, paging = false }
  M.followers[agent.id] = f
  map(buf, 'q', close_window, 'bgagents: close')
  vim.api.nvim_create_autocmd('BufWipeout', {
    buffer = buf,
    once = true,
    callback = function()
      if M.followers[agent.id] == f then
        M.followers[agent.id] = nil
        client.request(root, protocol.requests.unfollow, { id = agent.id }, function() end)
      end
    end,
  })
  fetch(agent.id, f, true)
  return buf
end

-- ---- Open --------------------------------------------------------------

local function substitute(s, path, agent, quote)
  return (s:gsub('{path}', function()
    return quote(path)
  end):gsub('{name}', function()
    return quote(agent and agent.name or '')
  end))
end

--- Opens a worktree: a new tabpage with :tcd, or open.cmd.
function M.open_worktree(path, agent)
  local cmd = config.values.open.cmd
  if type(cmd) == 'function' then
    return cmd(path, agent)
  elseif type(cmd) == 'string' then
    local line = substitute(cmd, path, agent, vim.fn.shellescape)
    local ok, e = compat.detach({ vim.o.shell, vim.o.shellcmdflag, line }, { cwd = path })
    if not ok then
      err('open: ' .. e)
    end
    return
  elseif type(cmd) == 'table' then
    local argv = {}
    for i, a in ipairs(cmd) do
      argv[i] = substitute(a, path, agent, function(x)
        return x
      end)
    end
    local ok, e = compat.detach(argv, { cwd = path })
    if not ok then
      err('open: ' .. e)
    end
    return
  end
  vim.cmd('tabnew')
  vim.cmd('tcd ' .. vim.fn.fnameescape(path))
  if config.values.open.edit then
    vim.cmd('silent edit ' .. vim.fn.fnameescape(path))
  end
end

return M
