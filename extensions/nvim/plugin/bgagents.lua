-- Defines :BgAgents and nothing else: the plugin's modules load on first
-- use. require('bgagents').setup{} starts the LSP clients for files in git
-- repositories (see :help bgagents).
if vim.g.loaded_bgagents then
  return
end
vim.g.loaded_bgagents = true

if vim.fn.has('nvim-0.7') ~= 1 then
  vim.api.nvim_err_writeln('bgagents needs Neovim 0.7 or newer')
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
