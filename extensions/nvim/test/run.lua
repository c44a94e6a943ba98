-- Runs one spec file in this (headless) Neovim and exits with its status:
--
--   BGAGENTS_TEST_SPEC=unit nvim --headless -u NONE -i NONE -n \
--     --cmd 'set rtp^=extensions/nvim' -c 'luafile extensions/nvim/test/run.lua'
--
-- (`-l` is Lisp mode in Neovim 0.7, so the runner is a luafile.) The Go
-- test extensions/nvim/nvim_test.go sets up the environment, the daemon's
-- state directory and a repository, and runs it in each Neovim version.
local dir = debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$')
package.path = dir .. '/?.lua;' .. package.path
local H = require('helpers')
local spec = os.getenv('BGAGENTS_TEST_SPEC') or 'unit'
local ok, e = xpcall(dofile, debug.traceback, dir .. '/' .. spec .. '_spec.lua')
if not ok then
  H.log('not ok - loading %s_spec.lua\n%s', spec, e)
  vim.cmd('cquit 1')
end
H.run()
