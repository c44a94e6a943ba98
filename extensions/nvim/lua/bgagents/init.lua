-- bgagents.nvim: AI coding agents running in the background, each in its
-- own git worktree, driven by the bgagents daemon.
--
--   require('bgagents').setup{ … }   options: :help bgagents-options
--
-- setup() may be called again: it replaces the options and re-creates the
-- plugin's autocmds (never twice); running clients are kept.
local M = {}

M.version = '0.1.0'

--- The data of the last User BgAgentsChanged on Neovim 0.7, whose autocmds
--- get no args.data: { agent = …, previous_state = … }.
M.event = nil

local did_setup = false
local augroup

--- Defines :BgAgents when plugin/bgagents.lua did not (no plugin loading).
local function define_command()
  if vim.fn.exists(':BgAgents') == 2 then
    return
  end
  vim.api.nvim_create_user_command('BgAgents', function(opts)
    require('bgagents.commands').run(opts)
  end, {
    nargs = '*',
    bang = true,
    range = true,
    desc = 'bgagents: background AI agents (spawn, send, list, open, diff, log, msg, cancel, merge, discard, review, findings, push, pr, integrate)',
    complete = function(arglead, cmdline, cursorpos)
      return require('bgagents.commands').complete(arglead, cmdline, cursorpos)
    end,
  })
end
M._define_command = define_command

--- Configures the plugin. Bad options are reported (by name) with
--- vim.notify and keep their defaults.
---@param opts table|nil see :help bgagents-options
---@return boolean ok
---@return string|nil errors
function M.setup(opts)
  local config = require('bgagents.config')
  local values, errors = config.validate(opts)
  config.values = values
  did_setup = true
  define_command()

  augroup = vim.api.nvim_create_augroup('bgagents', { clear = true })
  if values.attach then
    local client = require('bgagents.client')
    vim.api.nvim_create_autocmd({ 'BufReadPost', 'BufNewFile' }, {
      group = augroup,
      callback = function(args)
        client.attach(args.buf)
      end,
      desc = 'bgagents: start `bgagents lsp` for files in git repositories',
    })
    for _, buf in ipairs(vim.api.nvim_list_bufs()) do
      if vim.api.nvim_buf_is_loaded(buf) then
        client.attach(buf)
      end
    end
  end

  if #errors > 0 then
    local msg = 'bgagents: setup: ' .. table.concat(errors, '\nbgagents: setup: ')
    vim.notify(msg, vim.log.levels.ERROR, { title = 'bgagents' })
    return false, table.concat(errors, '\n')
  end
  return true
end

--- Runs setup() with vim.g.bgagents (or defaults) if it has not run: the
--- command works without any setup call.
function M.ensure_setup()
  if not did_setup then
    M.setup(vim.g.bgagents)
  end
end

--- A short summary of the agents for a statusline: "▶1 ?1 ✓2" (active,
--- needing input, finished but not merged or discarded, failed); "" when
--- there is nothing to show. Counts every agent the plugin has seen.
---@return string
function M.statusline()
  if not package.loaded['bgagents.state'] then
    return ''
  end
  local sym = require('bgagents.config').values.statusline
  local c = require('bgagents.state').counts()
  local parts = {}
  for _, k in ipairs({ 'active', 'needs_input', 'succeeded', 'failed' }) do
    if c[k] > 0 then
      parts[#parts + 1] = sym[k] .. c[k]
    end
  end
  return table.concat(parts, ' ')
end

--- Every agent the plugin knows (all repositories), newest first.
---@return bgagents.Agent[]
function M.agents()
  return require('bgagents.state').list(nil)
end

return M
