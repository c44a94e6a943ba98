-- Tests that need no daemon: options, setup twice, the command table and
-- completion, formatting, selections, the agent store and notifications.
local H = require('helpers')

local bg = require('bgagents')
local config = require('bgagents.config')
local format = require('bgagents.format')

H.test('plugin/bgagents.lua defines :BgAgents and loads no module', function()
  vim.cmd('runtime plugin/bgagents.lua')
  H.eq(2, vim.fn.exists(':BgAgents'), ':BgAgents exists')
  H.eq(nil, package.loaded['bgagents.client'], 'bgagents.client loaded at startup')
  H.eq(nil, package.loaded['bgagents.commands'], 'bgagents.commands loaded at startup')
end)

H.test('setup{} twice keeps one set of autocmds', function()
  H.eq(true, (bg.setup({ attach = true })), 'first setup')
  local n = #vim.api.nvim_get_autocmds({ group = 'bgagents' })
  H.ok(n > 0, 'autocmds defined')
  H.eq(true, (bg.setup({ attach = true, window = 'vsplit' })), 'second setup')
  H.eq(n, #vim.api.nvim_get_autocmds({ group = 'bgagents' }), 'autocmds after the second setup')
  H.eq('vsplit', config.values.window, 'the second setup applies')
  H.eq(2, vim.fn.exists(':BgAgents'), ':BgAgents exists')
  bg.setup({ attach = false })
  H.eq(0, #vim.api.nvim_get_autocmds({ group = 'bgagents' }), 'attach = false removes the autocmds')
end)

H.test('a misspelt option is named, with a suggestion', function()
  local from = #H.notes
  local ok, e = bg.setup({ lsit = {}, window = 'tabnew' })
  H.eq(false, ok, 'setup result')
  H.contains(e, 'unknown option lsit; did you mean list?')
  local n = H.note('unknown option lsit', from)
  H.ok(n, 'notified')
  H.eq(vim.log.levels.ERROR, n.level, 'level')
  H.eq('tabnew', config.values.window, 'the good option still applies')
end)

H.test('a nested option of the wrong type is named by its full name', function()
  local _, e = bg.setup({ list = { refresh_ms = 'often', keys = { opne = 'o' } }, notify = { states = { 1 } } })
  H.contains(e, 'option list.refresh_ms must be number, not string "often"')
  H.contains(e, 'unknown option list.keys.opne; did you mean list.keys.open?')
  H.contains(e, 'option notify.states must be a list of strings')
  H.eq(15000, config.values.list.refresh_ms, 'the default is kept')
  local _, e2 = bg.setup('x')
  H.contains(e2, 'option setup{} must be a table, not string "x"')
  local _, e3 = bg.setup({ cmd = {} })
  H.contains(e3, 'option cmd must name the bgagents executable')
  H.eq(true, (bg.setup({})), 'good setup')
end)

H.test('list keys are strings or false; notify.states are real states', function()
  local _, e = bg.setup({ list = { keys = { open = true, diff = false } }, notify = { states = { 'succeeded', 'sucess' } } })
  H.contains(e, 'option list.keys.open must be a string (a key) or false, not true')
  H.contains(e, 'option notify.states has an unknown state "sucess"')
  H.eq('<CR>', config.values.list.keys.open, 'the default key is kept')
  H.eq(false, config.values.list.keys.diff, 'false disables a key')
  H.eq({ 'succeeded', 'failed', 'needs_input', 'lost' }, config.values.notify.states, 'the default states are kept')
  H.eq(true, (bg.setup({ notify = { states = { 'cancelled', 'merged' } } })), 'real states')
  H.eq(true, (bg.setup({})), 'good setup')
end)

H.test('every option has a type, default and description', function()
  local function walk(schema, prefix)
    for k, s in pairs(schema) do
      H.ok(s.type and s.description and s.description ~= '', prefix .. k .. ' is documented')
      if s.fields then
        walk(s.fields, prefix .. k .. '.')
      end
    end
  end
  walk(config.schema, '')
  -- doc/bgagents.txt, next to this test's folder (or BGAGENTS_TEST_DOC)
  local here = debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$') or '.'
  local path = os.getenv('BGAGENTS_TEST_DOC') or (here .. '/../doc/bgagents.txt')
  local f = assert(io.open(path, 'r'), 'cannot read ' .. path)
  local doc = f:read('*a')
  f:close()
  local function documented(schema, prefix)
    for k, s in pairs(schema) do
      H.ok(doc:find('*bgagents-option-' .. prefix .. k .. '*', 1, true), 'doc/bgagents.txt has the tag *bgagents-option-' .. prefix .. k .. '*')
      if s.fields then
        documented(s.fields, prefix .. k .. '.')
      end
    end
  end
  documented(config.schema, '')
end)

H.test('unknown subcommand and misplaced bang give clear messages', function()
  local from = #H.notes
  vim.cmd('BgAgents frobnicate')
  H.contains(H.note('unknown subcommand', from).msg, 'unknown subcommand "frobnicate"; use one of: cancel, diff, discard, list, log, merge, msg, open, send, spawn')
  vim.cmd('BgAgents! diff x')
  H.ok(H.note('diff does not take !', from), 'bang message')
  vim.cmd('BgAgents open! x')
  H.ok(H.note('open does not take !', from), 'bang after the subcommand')
  vim.cmd('BgAgents diff a b')
  H.ok(H.note('diff takes one agent', from), 'extra argument message')
  vim.cmd('BgAgents spawn --agnet x do it')
  H.ok(H.note('spawn: unknown flag --agnet', from), 'flag message')
end)

H.test('no argument offers the subcommands with vim.ui.select', function()
  H.selects = {
    function()
      return nil
    end,
  }
  vim.cmd('BgAgents')
  local p = H.prompts[#H.prompts]
  H.eq({ 'cancel', 'diff', 'discard', 'list', 'log', 'merge', 'msg', 'open', 'send', 'spawn' }, p.items, 'items')
  H.contains(p.opts.format_item('spawn'), 'start an agent')
end)

H.test('completion of subcommands and flags', function()
  H.eq({ 'diff', 'discard' }, vim.fn.getcompletion('BgAgents di', 'cmdline'), 'BgAgents di')
  H.eq({ 'merge', 'msg' }, vim.fn.getcompletion('BgAgents m', 'cmdline'), 'BgAgents m')
  H.eq({ '--model' }, vim.fn.getcompletion('BgAgents spawn --mo', 'cmdline'), 'spawn flags')
  H.eq({ '--squash' }, vim.fn.getcompletion("BgAgents merge x --sq", 'cmdline'), 'merge flags')
  bg.setup({ agents = { 'claude', 'codex' } })
  H.eq({ 'codex' }, vim.fn.getcompletion('BgAgents spawn --agent co', 'cmdline'), 'agent names')
  bg.setup({})
end)

H.test('times, ages, diffstats and costs', function()
  local s, ns = format.parse_time('2026-11-21T16:00:06.928272996Z')
  H.eq(1795276806, s, 'seconds')
  H.eq(928272996, ns, 'nanoseconds')
  H.eq(1795276806 - 3600, (format.parse_time('2026-11-21T16:00:06+01:00')), 'offset')
  H.ok(format.later('2026-11-21T16:00:07.15Z', '2026-11-21T16:00:07.1Z'), '.15 after .1')
  H.ok(format.later('2026-11-21T16:00:07.5Z', '2026-11-21T16:00:07Z'), '.5 after .0')
  H.ok(not format.later('2026-11-21T16:00:07Z', '2026-11-21T16:00:07Z'), 'equal is not later')
  H.eq('5s', format.age('2026-11-21T16:00:00Z', 1795276805), 'seconds')
  H.eq('3m', format.age('2026-11-21T16:00:00Z', 1795276800 + 200), 'minutes')
  H.eq('2h', format.age('2026-11-21T16:00:00Z', 1795276800 + 7300), 'hours')
  H.eq('4d', format.age('2026-11-21T16:00:00Z', 1795276800 + 4 * 86400 + 5), 'days')
  H.eq('1f +2 -0', format.diffstat({ commits = 1, files = 1, additions = 2, deletions = 0 }), 'diffstat')
  H.eq('-', format.diffstat({ commits = 0, files = 0, additions = 0, deletions = 0 }), 'no diff')
  H.eq('$0.42', format.cost({ costUsd = 0.42 }), 'cost')
  H.eq('~$1.50', format.cost({ costUsd = 1.5, costEstimated = true }), 'estimated cost')
  H.eq('-', format.cost({ costUsd = 0 }), 'no cost')
end)

H.test('list lines are aligned columns', function()
  local lines = format.list_lines({
    { state = 'running', name = 'a', branch = 'bgagents/a', createdAt = '2026-11-21T16:00:00Z', diff = {}, usage = {} },
    {
      state = 'succeeded',
      name = 'longer-name',
      branch = 'bgagents/longer-name',
      createdAt = '2026-11-21T15:00:00Z',
      diff = { commits = 1, files = 2, additions = 3, deletions = 4 },
      usage = { costUsd = 0.1 },
    },
  }, 1795276800 + 30)
  H.eq('STATE      NAME         BRANCH                AGE  DIFF      COST', lines[1], 'header')
  H.eq('running    a            bgagents/a            30s  -         -', lines[2], 'row 1')
  H.eq('succeeded  longer-name  bgagents/longer-name  1h   2f +3 -4  $0.10', lines[3], 'row 2')
end)

H.test('log lines of each event kind', function()
  H.eq({ 'hello', 'world' }, format.event_lines({ kind = 'output', stream = 'stdout', text = 'hello\nworld' }), 'output')
  H.eq({ '[stderr] oops' }, format.event_lines({ kind = 'output', stream = 'stderr', text = 'oops' }), 'stderr')
  H.eq({ '── running: agent started' }, format.event_lines({ kind = 'state', state = 'running', text = 'agent started' }), 'state')
  H.eq({ '→ Write a.txt' }, format.event_lines({ kind = 'tool_call', tool = 'Write', path = 'a.txt' }), 'tool_call')
  H.eq({ '← Bash denied: no' }, format.event_lines({ kind = 'tool_result', tool = 'Bash', status = 'denied', text = 'no' }), 'tool_result')
  H.eq({ '? Which db?' }, format.event_lines({ kind = 'question', text = 'Which db?' }), 'question')
  H.eq({ '== error (api_error): boom' }, format.event_lines({ kind = 'result', isError = true, errorKind = 'api_error', text = 'boom' }), 'result')
  H.eq({ '> you: more' }, format.event_lines({ kind = 'message', text = 'more' }), 'message')
end)

H.test('flags before the task', function()
  local f, t = format.parse_flags('--agent claude --model=opus --read-only fix the  bug --name x', {
    agent = 'v',
    model = 'v',
    ['read-only'] = true,
    name = 'v',
  })
  H.eq({ agent = 'claude', model = 'opus', ['read-only'] = true }, f, 'flags')
  H.eq('fix the  bug --name x', t, 'task keeps the rest verbatim')
  local _, t2 = format.parse_flags('-- --not-a-flag', { agent = 'v' })
  H.eq('--not-a-flag', t2, '-- ends the flags')
  local f3, e3 = format.parse_flags('--agent', { agent = 'v' })
  H.eq(nil, f3, 'missing value')
  H.eq('--agent needs a value', e3, 'missing value message')
end)

H.test('selections become LSP ranges in UTF-16 and text', function()
  local buf = vim.api.nvim_create_buf(true, false)
  vim.api.nvim_set_current_buf(buf)
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, { 'zero', 'añb𝄞c', 'two', 'three' })
  local cmds = require('bgagents.commands')
  local s = cmds.selection(buf, { line1 = 2, line2 = 3, range = 2 })
  H.eq({ start = { line = 1, character = 0 }, ['end'] = { line = 2, character = 3 } }, s.range, 'linewise range')
  H.eq('añb𝄞c\ntwo', s.text, 'linewise text')
  -- characterwise: from "ñ" to "𝄞" on line 2
  vim.cmd('normal! 2G0lvll\27')
  local c = cmds.selection(buf, { line1 = 2, line2 = 2, range = 2 })
  H.eq('ñb𝄞', c.text, 'characterwise text')
  H.eq({ start = { line = 1, character = 1 }, ['end'] = { line = 1, character = 5 } }, c.range, 'characterwise UTF-16 range')
  vim.cmd('bwipeout!')
end)

H.test('a first snapshot fires no BgAgentsChanged per agent', function()
  local state = require('bgagents.state')
  local fired, heard = 0, 0
  local id = vim.api.nvim_create_autocmd('User', {
    pattern = 'BgAgentsChanged',
    callback = function()
      fired = fired + 1
    end,
  })
  state.subscribe(function()
    heard = heard + 1
  end)
  local function rec(n, upd)
    return {
      id = 'snap' .. n, name = 'snap' .. n, repo = '/nonexistent/snap', branch = 'bgagents/snap' .. n,
      state = 'succeeded', error = '', createdAt = '2026-11-21T16:00:00Z', updatedAt = upd,
      diff = { commits = 0, files = 0, additions = 0, deletions = 0 }, usage = { costUsd = 0 },
    }
  end
  state.replace({ rec(1, '2026-11-21T16:00:01Z'), rec(2, '2026-11-21T16:00:01Z'), rec(3, '2026-11-21T16:00:01Z') }, '/nonexistent/snap')
  H.eq(0, fired, 'BgAgentsChanged for the first snapshot')
  H.eq(1, heard, 'the listeners run once')
  H.eq(3, #state.list('/nonexistent/snap'), 'the agents are stored')
  state.replace({ rec(1, '2026-11-21T16:00:02Z'), rec(2, '2026-11-21T16:00:01Z'), rec(3, '2026-11-21T16:00:01Z') }, '/nonexistent/snap')
  H.eq(1, fired, 'BgAgentsChanged for the one that changed')
  vim.api.nvim_del_autocmd(id)
  for n = 1, 3 do
    state.agents['snap' .. n] = nil
  end
end)

H.test('the store applies newer records once and notifies on a change of state', function()
  local state = require('bgagents.state')
  local seen = 0
  vim.api.nvim_create_autocmd('User', {
    pattern = 'BgAgentsChanged',
    callback = function(args)
      local data = args.data or bg.event
      if data.agent.id == 'aaaaaaaaaaaa' then
        seen = seen + 1
      end
    end,
  })
  local a = {
    id = 'aaaaaaaaaaaa',
    name = 'unit',
    repo = '/nonexistent/repo',
    branch = 'bgagents/unit',
    state = 'running',
    error = '',
    createdAt = '2026-11-21T16:00:00Z',
    updatedAt = '2026-11-21T16:00:01Z',
    diff = { commits = 0, files = 0, additions = 0, deletions = 0 },
    usage = { costUsd = 0 },
  }
  local from = #H.notes
  H.eq(true, state.update(vim.deepcopy(a), true), 'first record')
  H.eq('▶1', bg.statusline(), 'statusline while running')
  local done = vim.tbl_extend('force', a, {
    state = 'succeeded',
    updatedAt = '2026-11-21T16:00:02.5Z',
    diff = { commits = 1, files = 1, additions = 8, deletions = 0 },
  })
  H.eq(true, state.update(vim.deepcopy(done), true), 'newer record')
  H.eq(false, state.update(vim.deepcopy(done), true), 'the same record again (a second client)')
  H.eq(false, state.update(vim.deepcopy(a), true), 'an older record')
  local finished = 0
  for i = from + 1, #H.notes do
    if H.notes[i].msg:find('unit finished', 1, true) then
      finished = finished + 1
    end
  end
  H.eq(1, finished, 'notifications')
  H.contains(H.note('unit finished', from).msg, 'bgagents: unit finished (1 files, +8 −0) on bgagents/unit')
  H.eq(2, seen, 'User BgAgentsChanged autocmds')
  H.eq('✓1', bg.statusline(), 'statusline after it finished')
  local q = vim.tbl_extend('force', done, {
    state = 'needs_input',
    updatedAt = '2026-11-21T16:00:03Z',
    questions = { { text = 'Which database?' } },
  })
  state.update(q, true)
  H.contains(H.note('needs input', from).msg, 'bgagents: unit needs input: Which database?')
  state.agents[a.id] = nil
end)

H.test('a missing executable gives a clear message', function()
  bg.setup({ cmd = { '/nonexistent/bgagents' }, attach = false })
  local repo = os.getenv('BGAGENTS_TEST_REPO')
  if repo then
    vim.cmd('cd ' .. vim.fn.fnameescape(repo))
  end
  local from = #H.notes
  vim.cmd('BgAgents diff x')
  H.contains(H.wait_note('is not executable', from, 5000).msg, '/nonexistent/bgagents is not executable')
  bg.setup({})
end)

H.test('outside a git repository, commands say so', function()
  vim.cmd('cd /')
  local from = #H.notes
  vim.cmd('BgAgents list')
  H.ok(H.note('not inside a git repository', from), 'message')
end)
