-- The plugin against the real daemon and a scripted agent (a shell script
-- committed in the repository; see nvim_test.go). The tests run in order
-- and build on each other, like a user's session.
--
-- Environment: BGAGENTS_TEST_BIN (the bgagents executable),
-- BGAGENTS_TEST_REPO (the repository: calc.txt has the lines "line one",
-- "line two", "line three"), BGAGENTS_TEST_TMP (a scratch directory),
-- BGAGENTS_HOME (the daemon's own state directory).
local H = require('helpers')

local bin = assert(os.getenv('BGAGENTS_TEST_BIN'), 'BGAGENTS_TEST_BIN')
local repo = assert(os.getenv('BGAGENTS_TEST_REPO'), 'BGAGENTS_TEST_REPO')
local tmp = assert(os.getenv('BGAGENTS_TEST_TMP'), 'BGAGENTS_TEST_TMP')

local bg = require('bgagents')
local opts = { cmd = { bin }, list = { refresh_ms = 0 }, ask_agent = false }

local changed = {} -- User BgAgentsChanged: "name state"
vim.api.nvim_create_autocmd('User', {
  pattern = 'BgAgentsChanged',
  callback = function(args)
    local data = args.data or bg.event
    changed[#changed + 1] = data.agent.name .. ' ' .. data.agent.state
  end,
})

local function agent(name)
  return require('bgagents.state').find(name, repo)
end

local function wait_state(name, st, ms)
  return H.wait(name .. ' to be ' .. st, function()
    local a = agent(name)
    return a and a.state == st and a
  end, ms)
end

local function bufname(kind, name)
  return string.format('bgagents://%s/%s', name, kind)
end

local calc = repo .. '/calc.txt'

H.test('setup twice, then a file of the repository gets a bgagents client', function()
  vim.cmd('runtime plugin/bgagents.lua')
  H.eq(true, (bg.setup(opts)), 'setup')
  H.eq(true, (bg.setup(opts)), 'setup again')
  vim.cmd('edit ' .. vim.fn.fnameescape(calc))
  local c = H.wait('a bgagents client attached to calc.txt', function()
    for _, c in ipairs(H.buf_clients(0)) do
      if c.name == 'bgagents' and c.initialized ~= false then
        return c
      end
    end
  end)
  H.eq(repo, c.config.root_dir, 'root_dir')
  H.wait('the client to be initialized', function()
    local l = require('bgagents.client').list()
    return #l == 1 and l[1].ready
  end)
  H.eq(1, #require('bgagents.client').list(), 'one client after two setups')
end)

H.test('files opened and a command run at once share one client', function()
  local client = require('bgagents.client')
  client.stop_all()
  H.wait('the client to stop', function()
    return #client.list() == 0
  end)
  -- three files of the repository and a command, before any client is up
  vim.cmd('edit ' .. vim.fn.fnameescape(calc))
  vim.cmd('split ' .. vim.fn.fnameescape(repo .. '/tools/agent.sh'))
  vim.cmd('split ' .. vim.fn.fnameescape(repo .. '/.bgagents.toml'))
  vim.fn.getcompletion('BgAgents diff ', 'cmdline')
  H.wait('the client to be initialized', function()
    local l = client.list()
    return #l >= 1 and l[1].ready
  end)
  H.eq(1, #client.list(), 'one client for the repository')
  local ids = {}
  for _, w in ipairs(vim.api.nvim_tabpage_list_wins(0)) do
    for _, c in ipairs(H.buf_clients(vim.api.nvim_win_get_buf(w))) do
      if c.name == 'bgagents' then
        ids[c.id] = true
      end
    end
  end
  H.eq(1, #vim.tbl_keys(ids), 'one client attached to the three files')
  vim.cmd('edit ' .. vim.fn.fnameescape(calc))
  vim.cmd('silent only')
end)

H.test('spawn: the list shows the agent; a notification when it finishes', function()
  local from = #H.notes
  vim.cmd('BgAgents spawn --name first Write first')
  H.wait_note('first started on branch bgagents/first', from)
  vim.cmd('BgAgents list')
  local list = H.wait('the list buffer', function()
    return H.buf('bgagents://list/' .. repo)
  end)
  H.eq(list, vim.api.nvim_get_current_buf(), 'the list is the current buffer')
  H.wait('a row for first', function()
    return H.line_matching(list, '^%S+%s+first%s+bgagents/first%s')
  end)
  H.wait_note('bgagents: first finished (1 files, +1 −0) on bgagents/first', from)
  local row = H.wait('the row to show succeeded', function()
    return H.line_matching(list, '^succeeded%s+first%s')
  end)
  H.ok(row:match('1f %+1 %-0'), 'diffstat in ' .. row)
  H.ok(vim.tbl_contains(changed, 'first succeeded'), 'User BgAgentsChanged for first succeeded')
  H.contains(bg.statusline(), '✓1', 'statusline')
  -- the row's cursor is on first: `d` shows its diff
  vim.api.nvim_set_current_win(vim.fn.win_findbuf(list)[1])
  vim.api.nvim_win_set_cursor(0, { 3, 0 })
  H.eq('first', require('bgagents.ui').agent_at_cursor().name, 'agent on the row')
  vim.cmd('normal d')
  local diff = H.wait('the diff buffer from the list key', function()
    return H.buf(bufname('diff', 'first'))
  end)
  vim.api.nvim_buf_delete(diff, { force = true })
  vim.cmd('silent only')
end)

H.test('open makes a tabpage whose cwd is the worktree', function()
  local a = agent('first')
  local tabs = vim.fn.tabpagenr('$')
  vim.cmd('BgAgents open first')
  H.wait('a new tabpage', function()
    return vim.fn.tabpagenr('$') == tabs + 1
  end)
  H.eq(tabs + 1, vim.fn.tabpagenr(), 'the new tabpage is current')
  H.eq(H.realpath(a.worktree), H.realpath(vim.fn.getcwd(-1, 0)), 'tabpage cwd')
  H.eq(1, vim.fn.haslocaldir(-1, 0), ':tcd was used')
  vim.cmd('tabclose')
  H.ok(H.realpath(vim.fn.getcwd()) ~= H.realpath(a.worktree), 'the first tabpage keeps its cwd')
end)

H.test('diff shows the change in a diff buffer', function()
  vim.cmd('BgAgents diff first')
  local buf = H.wait('the diff buffer', function()
    return H.buf(bufname('diff', 'first'))
  end)
  H.eq('diff', vim.bo[buf].filetype, 'filetype')
  H.ok(H.line_matching(buf, '^%+%+%+ b/NOTES%.md$'), 'the file header')
  H.ok(H.line_matching(buf, '^%+Write first$'), 'the added line')
  vim.cmd('close')
end)

H.test('log follows an agent live', function()
  local go = tmp .. '/go-slow'
  local from = #H.notes
  vim.cmd('BgAgents spawn --name slow wait ' .. go)
  wait_state('slow', 'running')
  vim.cmd('BgAgents log slow')
  local buf = H.wait('the log buffer', function()
    return H.buf(bufname('log', 'slow'))
  end)
  H.wait('the log to show the agent waiting', function()
    return H.line_matching(buf, '^waiting for ')
  end)
  H.ok(not H.line_matching(buf, '^done waiting'), 'not done yet')
  local f = assert(io.open(go, 'w'))
  f:close()
  H.wait('the log to show what came after', function()
    return H.line_matching(buf, '^done waiting$')
  end)
  H.wait('the log to show the end', function()
    return H.line_matching(buf, '^── succeeded')
  end)
  H.wait_note('slow finished', from)
  -- every event once, in order
  local seen = {}
  for _, l in ipairs(H.lines(buf)) do
    H.ok(not seen[l] or l == 'done', 'line repeated: ' .. l)
    seen[l] = true
  end
  vim.cmd('close')
end)

H.test('msg sends a follow-up to a finished agent', function()
  local from = #H.notes
  vim.cmd('BgAgents log first')
  local buf = H.wait('the log of first', function()
    return H.buf(bufname('log', 'first'))
  end)
  H.wait('the first run in the log', function()
    return H.line_matching(buf, '^working on: Write first$')
  end)
  vim.cmd('BgAgents msg first Second round')
  H.wait_note('first: running (follow-up 2)', from)
  H.wait('the follow-up in the log', function()
    return H.line_matching(buf, '^working on: Second round$')
  end)
  local a = H.wait('first to finish again', function()
    local a = agent('first')
    return a.state == 'succeeded' and a.runs == 2 and a
  end)
  H.eq(2, a.diff.commits, 'commits after the follow-up')
  vim.cmd('close')
end)

H.test('discard refuses unmerged work, discard! removes it', function()
  local a = agent('first')
  local from = #H.notes
  vim.cmd('BgAgents discard first')
  local n = H.wait_note('discard first:', from)
  H.contains(n.msg, ':BgAgents discard!', 'the message names the bang')
  H.eq(1, vim.fn.isdirectory(a.worktree), 'worktree still there')
  vim.cmd('BgAgents discard! first')
  wait_state('first', 'discarded')
  H.wait_note('first: discarded', from)
  H.eq(0, vim.fn.isdirectory(a.worktree), 'worktree removed')
  local list = H.buf('bgagents://list/' .. repo)
  H.wait('the list to show first discarded', function()
    return H.line_matching(list, '^discarded%s+first%s')
  end)
end)

H.test('cancel stops a running agent; merge lands a finished one', function()
  local from = #H.notes
  vim.cmd('BgAgents spawn --name hang wait ' .. tmp .. '/never')
  wait_state('hang', 'running')
  H.contains(bg.statusline(), '▶1', 'statusline')
  -- Cancel once the agent runs its script: a cancel right after the
  -- daemon reports `running` can find the shim before it handles SIGTERM,
  -- and the agent ends `lost` (a daemon race, agents/shim.go RunShim).
  vim.cmd('BgAgents log hang')
  local log = H.wait('the log of hang', function()
    return H.buf(bufname('log', 'hang'))
  end)
  H.wait('hang to wait', function()
    return H.line_matching(log, '^waiting for ')
  end)
  vim.cmd('BgAgents cancel hang')
  wait_state('hang', 'cancelled')
  H.wait_note('hang: cancelled', from)
  H.wait('the log to show the cancel', function()
    return H.line_matching(log, '^── cancelled')
  end)
  vim.cmd('close')
  vim.cmd('BgAgents discard! hang')
  wait_state('hang', 'discarded')
  H.selects = { H.pick('slow') }
  vim.cmd('BgAgents merge --squash')
  wait_state('slow', 'merged')
  H.ok(not H.note('merge --squash', from), 'no agent called --squash')
  H.wait_note('slow: merged', from)
end)

H.test('the code action is offered on a selection and spawns an agent with it', function()
  vim.cmd('edit ' .. vim.fn.fnameescape(calc))
  vim.cmd('silent only')
  local c
  for _, cl in ipairs(H.buf_clients(0)) do
    if cl.name == 'bgagents' then
      c = cl
    end
  end
  H.ok(c, 'client attached')
  -- the request itself, through the client
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(0) },
    range = { start = { line = 1, character = 0 }, ['end'] = { line = 2, character = 10 } },
    context = { diagnostics = {} },
  }
  local resp
  if vim.fn.has('nvim-0.11') == 1 then
    resp = c:request_sync('textDocument/codeAction', params, 10000, 0)
  else
    resp = c.request_sync('textDocument/codeAction', params, 10000, 0)
  end
  H.ok(resp and resp.result, 'codeAction result: ' .. vim.inspect(resp))
  H.eq('Send to background agent', resp.result[1].title, 'title')
  H.eq('line two\nline three', resp.result[1].command.arguments[1].text, 'the selected text')

  -- what a user does: vim.lsp.buf's code action menu, then a task
  local from = #H.notes
  H.selects = { H.pick('Send to background agent') }
  H.inputs = { 'Explain the selection' }
  if vim.fn.has('nvim-0.10') == 1 then
    vim.lsp.buf.code_action({ range = { start = { 2, 0 }, ['end'] = { 3, 10 } } })
  else
    vim.lsp.buf.range_code_action(nil, { 2, 0 }, { 3, 10 })
  end
  H.wait('the menu and the task question', function()
    return #H.selects == 0 and #H.inputs == 0
  end)
  local n = H.wait_note('started on branch bgagents/explain-the-selection', from)
  H.ok(n, 'started')
  local a = wait_state('explain-the-selection', 'succeeded')
  H.eq('Explain the selection', a.task, 'task')
  H.eq('calc.txt', a.context.file, 'context file')
  H.eq(2, a.context.startLine, 'context start line')
  H.eq(3, a.context.endLine, 'context end line')
  H.contains(a.context.text, 'line two\nline three', 'context text')
end)

H.test(":'<,'>BgAgents send spawns an agent with the selection as context", function()
  local from = #H.notes
  vim.cmd('normal! 1GVj\27')
  vim.cmd("'<,'>BgAgents send --name sent Summarize these lines")
  H.wait_note('sent started on branch bgagents/sent', from)
  local a = wait_state('sent', 'succeeded')
  H.eq('Summarize these lines', a.task, 'task')
  H.eq({ file = 'calc.txt', startLine = 1, endLine = 2, text = 'line one\nline two' }, a.context, 'context')
  vim.cmd('BgAgents diff sent')
  local buf = H.wait('the diff of sent', function()
    return H.buf(bufname('diff', 'sent'))
  end)
  H.ok(H.line_matching(buf, '^%+Summarize these lines$'), 'the task in the diff')
  H.ok(H.line_matching(buf, '^%+Context: calc%.txt lines 1%-2$'), 'the context in the diff')
  vim.cmd('close')
end)

H.test('bad input: an unknown agent and an unknown subcommand', function()
  local from = #H.notes
  vim.cmd('BgAgents diff nope')
  local n = H.wait_note('diff nope:', from)
  H.contains(n.msg, 'agent not found', 'diff nope')
  H.eq(vim.log.levels.ERROR, n.level, 'level')
  vim.cmd('BgAgents open nope')
  H.contains(H.wait_note('open nope:', from).msg, 'no agent has the id, id prefix or name "nope"')
  vim.cmd('BgAgents frobnicate')
  H.contains(H.wait_note('unknown subcommand', from).msg, 'use one of: cancel, diff')
end)

H.test('completion of agent names', function()
  vim.cmd('edit ' .. vim.fn.fnameescape(calc))
  H.eq({ 'sent' }, vim.fn.getcompletion('BgAgents diff se', 'cmdline'), 'diff se')
  local all = vim.fn.getcompletion('BgAgents log ', 'cmdline')
  for _, n in ipairs({ 'explain-the-selection', 'first', 'hang', 'sent', 'slow' }) do
    H.ok(vim.tbl_contains(all, n), n .. ' in ' .. vim.inspect(all))
  end
  H.eq({}, vim.fn.getcompletion('BgAgents cancel ', 'cmdline'), 'nothing to cancel')
  H.eq({ 'explain-the-selection' }, vim.fn.getcompletion('BgAgents msg ex', 'cmdline'), 'msg ex')
end)

H.test('spawn asks for the task, then the agent and model offered by setup{}', function()
  bg.setup(vim.tbl_extend('force', opts, { agents = { 'script', 'alt' }, models = { alt = { 'm1', 'm2' } } }))
  H.inputs = { 'Typed task' }
  H.selects = { H.pick('alt'), H.pick('m2') }
  vim.cmd('BgAgents spawn --name typed')
  local a = wait_state('typed', 'succeeded')
  H.eq('Typed task', a.task, 'task')
  H.eq('alt', a.agent, 'agent')
  H.eq('m2', a.model, 'model')
  H.eq('Task for a new agent: ', H.prompts[#H.prompts - 2].prompt, 'the task question')
  H.eq({ 'script', 'alt' }, H.prompts[#H.prompts - 1].items, 'the agents offered')
  bg.setup(opts)
end)

H.test('without agents in setup{}, spawn offers the agents of bgagents/agents', function()
  bg.setup(vim.tbl_extend('force', opts, { ask_agent = true, models = { alt = { 'm3' } } }))
  H.selects = { H.pick('alt (command') }
  vim.cmd('BgAgents spawn --name picked Picked task')
  local a = wait_state('picked', 'succeeded')
  H.eq('alt', a.agent, 'agent')
  H.eq('m3', a.model, 'the model from setup{}')
  local items = H.prompts[#H.prompts].items
  H.eq('script', items[1], 'the default agent first')
  H.ok(vim.tbl_contains(items, 'alt'), 'alt offered: ' .. vim.inspect(items))
  local names = vim.fn.getcompletion('BgAgents spawn --agent ', 'cmdline')
  H.ok(vim.tbl_contains(names, 'script') and vim.tbl_contains(names, 'alt'), '--agent completion: ' .. vim.inspect(names))
  bg.setup(opts)
end)

H.test('a failing agent is notified as an error', function()
  local from = #H.notes
  vim.cmd('BgAgents spawn --name broken fail on purpose')
  local n = H.wait_note('bgagents: broken failed: ', from)
  H.contains(n.msg, 'agent exited with code 3: giving up: on purpose', 'message')
  H.eq(vim.log.levels.ERROR, n.level, 'level')
  H.ok(vim.tbl_contains(changed, 'broken failed'), 'User BgAgentsChanged')
end)

H.test('open.cmd runs a command in the worktree instead of a tabpage', function()
  local out = tmp .. '/opened'
  bg.setup(vim.tbl_extend('force', opts, {
    open = { cmd = { 'sh', '-c', 'printf %s "$1" >"$2.tmp" && mv "$2.tmp" "$2"', 'sh', '{path}', out } },
  }))
  local tabs = vim.fn.tabpagenr('$')
  vim.cmd('BgAgents open typed')
  local path = H.wait('open.cmd to write ' .. out, function()
    local f = io.open(out, 'r')
    if f then
      local s = f:read('*a')
      f:close()
      return s
    end
  end)
  H.eq(H.realpath(agent('typed').worktree), H.realpath(path), 'the path given to open.cmd')
  H.eq(tabs, vim.fn.tabpagenr('$'), 'no new tabpage')
  bg.setup(opts)
end)

H.test('D on a list row asks before discarding unmerged work', function()
  vim.cmd('BgAgents list')
  local list = H.buf('bgagents://list/' .. repo)
  H.eq(list, vim.api.nvim_get_current_buf(), 'the list is current')
  local lnum = H.wait('the row of typed', function()
    for i, l in ipairs(H.lines(list)) do
      if l:match('^succeeded%s+typed%s') then
        return i
      end
    end
  end)
  vim.api.nvim_win_set_cursor(0, { lnum, 0 })
  local from = #H.notes
  H.selects = { H.pick('Discard it anyway') }
  vim.cmd('normal D')
  wait_state('typed', 'discarded')
  H.wait_note('typed: discarded', from)
  H.contains(H.prompts[#H.prompts].prompt, 'not merged into main', 'the question says why')
  H.wait('the row to show discarded', function()
    return H.line_matching(list, '^discarded%s+typed%s')
  end)
  vim.cmd('close')
end)

H.test('list! shows every repository; r reloads it', function()
  local from = #H.notes
  vim.cmd('BgAgents list!')
  local list = H.wait('the list of every repository', function()
    return H.buf('bgagents://list/all')
  end)
  H.wait('a row for sent', function()
    return H.line_matching(list, '^%S+%s+sent%s')
  end)
  vim.cmd('normal r')
  vim.wait(300, function()
    return H.note('list:', from) ~= nil
  end, 20)
  H.ok(not H.note('list:', from), 'no list error')
  H.ok(not H.note('invalid params', from), 'no invalid params')
  vim.cmd('close')
end)

H.test("window = 'tabnew' leaves no empty buffer; q on the last window; pickers skip merged agents", function()
  bg.setup(vim.tbl_extend('force', opts, { window = 'tabnew' }))
  local before = #vim.api.nvim_list_bufs()
  vim.cmd('BgAgents diff sent')
  local buf = H.wait('the diff of sent', function()
    return H.buf(bufname('diff', 'sent'))
  end)
  H.eq(before + 1, #vim.api.nvim_list_bufs(), 'only the diff buffer was added')
  vim.cmd('tabonly')
  vim.cmd('silent only')
  H.eq(1, #vim.api.nvim_list_wins(), 'the diff is the last window')
  vim.cmd('normal q')
  H.ok(not vim.api.nvim_buf_is_valid(buf) or vim.api.nvim_get_current_buf() ~= buf, 'q left the diff')
  bg.setup(opts)
  H.selects = { function(items)
    for _, a in ipairs(items) do
      H.ok(a.state ~= 'merged' and a.state ~= 'discarded', a.name .. ' is ' .. a.state)
    end
    return nil
  end }
  vim.cmd('BgAgents log')
  vim.cmd('edit ' .. vim.fn.fnameescape(calc))
end)

H.test('after the daemon stops, the next command re-attaches open buffers', function()
  local client = require('bgagents.client')
  vim.cmd('edit ' .. vim.fn.fnameescape(calc))
  vim.cmd('silent only')
  local buf = vim.api.nvim_get_current_buf()
  vim.fn.system({ bin, 'daemon', '--stop' })
  H.wait('the client to exit', function()
    return #client.list() == 0
  end)
  local function attached()
    for _, c in ipairs(H.buf_clients(buf)) do
      if c.name == 'bgagents' then
        return c
      end
    end
  end
  H.wait('calc.txt to have no client', function()
    return not attached()
  end)
  vim.cmd('BgAgents list')
  H.wait('a new client', function()
    local l = client.list()
    return #l == 1 and l[1].ready
  end)
  H.wait('calc.txt attached to the new client', function()
    local c = attached()
    return c and c.id == client.list()[1].id
  end)
  vim.cmd('silent only')
end)

H.test(':checkhealth bgagents', function()
  vim.cmd('checkhealth bgagents')
  local text = table.concat(H.lines(0), '\n')
  if os.getenv('BGAGENTS_TEST_SHOW_HEALTH') then
    H.log('%s', text)
  end
  H.contains(text, 'bgagents 0.1.0 (build ', 'version')
  H.contains(text, 'daemon: pid ', 'daemon reachable')
  H.contains(text, 'agent script: ', 'configured agent')
  H.ok(text:match('claude: %S'), 'the claude CLI is reported (installed or not)')
  H.contains(text, 'client ', 'LSP client')
  H.ok(not text:find('ERROR', 1, true), 'no errors in\n' .. text)
end)
