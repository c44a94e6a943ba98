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
  H.contains(H.note('unknown subcommand', from).msg, 'unknown subcommand "frobnicate"; use one of: cancel, diff, discard, findings, integrate, list, log, merge, msg, open, pr, push, review, send, spawn')
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
  H.eq({ 'cancel', 'diff', 'discard', 'findings', 'integrate', 'list', 'log', 'merge', 'msg', 'open', 'pr', 'push', 'review', 'send', 'spawn' }, p.items, 'items')
  H.contains(p.opts.format_item('spawn'), 'start an agent')
end)

H.test('completion of subcommands and flags', function()
  H.eq({ 'diff', 'discard' }, vim.fn.getcompletion('BgAgents di', 'cmdline'), 'BgAgents di')
  H.eq({ 'merge', 'msg' }, vim.fn.getcompletion('BgAgents m', 'cmdline'), 'BgAgents m')
  H.eq({ 'pr', 'push' }, vim.fn.getcompletion('BgAgents p', 'cmdline'), 'BgAgents p')
  H.eq({ '--model' }, vim.fn.getcompletion('BgAgents spawn --mo', 'cmdline'), 'spawn flags')
  H.eq({ '--after' }, vim.fn.getcompletion('BgAgents spawn --af', 'cmdline'), 'spawn --after')
  H.eq({ '--variants' }, vim.fn.getcompletion('BgAgents spawn --va', 'cmdline'), 'spawn --variants')
  H.eq({ '--squash' }, vim.fn.getcompletion("BgAgents merge x --sq", 'cmdline'), 'merge flags')
  H.eq({ '--draft' }, vim.fn.getcompletion('BgAgents pr x --dr', 'cmdline'), 'pr flags after the agent')
  H.eq({ '--remote' }, vim.fn.getcompletion('BgAgents push --re', 'cmdline'), 'push flags')
  H.eq({ '--task' }, vim.fn.getcompletion('BgAgents integrate a b --ta', 'cmdline'), 'integrate flags')
  bg.setup({ agents = { 'claude', 'codex' } })
  H.eq({ 'codex' }, vim.fn.getcompletion('BgAgents spawn --agent co', 'cmdline'), 'agent names')
  H.eq({ 'codex' }, vim.fn.getcompletion('BgAgents review --agent co', 'cmdline'), 'reviewer agent names')
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

H.test('flags: quoted values, numbers, repeatable flags; flags and words in any order', function()
  local f, t = format.parse_flags('--agent a --agent=b --variants 3 --after first do it', {
    agent = 'list',
    variants = 'number',
    after = 'v',
  })
  H.eq({ agent = { 'a', 'b' }, variants = 3, after = 'first' }, f, 'flags')
  H.eq('do it', t, 'task')
  local _, e = format.parse_flags('--variants two x', { variants = 'number' })
  H.eq('--variants needs a whole number, not "two"', e, 'not a number')
  local f2, w2 = format.parse_args([[x --title "Fix the  parser" --draft --base=dev]], { title = 'v', draft = true, base = 'v' })
  H.eq({ title = 'Fix the  parser', draft = true, base = 'dev' }, f2, 'pr flags')
  H.eq({ 'x' }, w2, 'the agent before the flags')
  local f3, w3 = format.parse_args([[--agent r a b --task 'it''s "fine"' c]], { agent = 'v', task = 'v' })
  H.eq({ agent = 'r', task = [[it's "fine"]] }, f3, 'integrate flags')
  H.eq({ 'a', 'b', 'c' }, w3, 'the agents around the flags')
  local _, e4 = format.parse_args('--title "open', { title = 'v' })
  H.eq('--title: unterminated "', e4, 'unterminated quote')
  local _, w5 = format.parse_args('a -- --b', { title = 'v' })
  H.eq({ 'a', '--b' }, w5, '-- ends the flags')
  local _, e6 = format.parse_args('a --remot x', { remote = 'v' })
  H.contains(e6, 'unknown flag --remot (known: --remote)')
end)

-- A record for the landing tests.
local function landing_rec(over)
  return vim.tbl_extend('force', {
    id = 'id-' .. over.name, repo = '/nonexistent/landing', branch = 'bgagents/' .. over.name,
    state = 'succeeded', error = '', createdAt = '2026-11-21T16:00:00Z', updatedAt = '2026-11-21T16:00:01Z',
    diff = { commits = 1, files = 1, additions = 1, deletions = 0 }, usage = { costUsd = 0 },
  }, over)
end

H.test('list notes: variants grouped, pipeline steps, reviews, conflicts, push and PR', function()
  local names = { ['id-first'] = 'first', ['id-left'] = 'left', ['id-right'] = 'right' }
  local agents = format.grouped({
    landing_rec({ name = 'step', state = 'queued', after = 'id-first', createdAt = '2026-11-21T16:00:05Z' }),
    landing_rec({ name = 'fan-v2', group = 'g1', variant = 2, createdAt = '2026-11-21T16:00:04Z' }),
    landing_rec({ name = 'other', createdAt = '2026-11-21T16:00:03Z' }),
    landing_rec({ name = 'fan-v1', group = 'g1', variant = 1, createdAt = '2026-11-21T16:00:02Z' }),
    landing_rec({
      name = 'left',
      createdAt = '2026-11-21T16:00:01Z',
      conflicts = { { agent = 'id-right', name = 'right', files = { 'shared.txt' } } },
      reviews = {
        { id = 'r1', name = 'review-left', verdict = 'approve', state = 'succeeded' },
        { id = 'r2', name = 'review-left-2', verdict = 'request_changes', state = 'succeeded',
          findings = { { file = 'shared.txt', line = 1, severity = 'high', message = 'no' } } },
      },
      pushed = { remote = 'origin', branch = 'bgagents/left', commit = 'abc', at = '2026-11-21T16:00:09Z' },
    }),
  })
  local order = {}
  for i, a in ipairs(agents) do
    order[i] = a.name
  end
  H.eq({ 'step', 'fan-v1', 'fan-v2', 'other', 'left' }, order, 'variants together, by number, where the newest was')
  local lines, marks = format.list_lines(agents, 1795276800 + 30, function(id)
    return names[id]
  end)
  H.contains(lines[1], 'COST  NOTES', 'a NOTES column')
  H.ok(lines[2]:match('^queued%s+step%s.*waiting for first$'), 'pipeline step: ' .. lines[2])
  H.ok(lines[3]:match('v1/2 of fan$'), 'variant 1: ' .. lines[3])
  H.ok(lines[4]:match('v2/2 of fan$'), 'variant 2: ' .. lines[4])
  H.eq('succeeded  other   bgagents/other   27s  1f +1 -0  -', vim.trim(lines[5]), 'no notes')
  H.ok(lines[6]:match('✗ changes requested %(1 finding%); ⚠ conflicts with right: shared%.txt; pushed to origin$'), 'left: ' .. lines[6])
  local m = marks[6]
  H.eq('request_changes', m[1][3], 'the verdict is marked')
  H.eq('✗ changes requested (1 finding)', lines[6]:sub(m[1][1] + 1, m[1][2]), 'the verdict mark covers it')
  H.eq('⚠ conflicts with right: shared.txt', lines[6]:sub(m[2][1] + 1, m[2][2]), 'the conflict mark covers it')
  -- a running step says "after"; a live review says so; a PR wins over "pushed"
  local parts = format.notes(landing_rec({ name = 's', state = 'running', after = 'id-first', pullRequest = 'https://x/pull/1',
    pushed = { remote = 'origin' }, reviews = { { id = 'r', name = 'rv', state = 'running' } } }), function(id)
    return names[id]
  end)
  local texts = {}
  for i, p in ipairs(parts) do
    texts[i] = p[1]
  end
  H.eq({ 'after first', 'reviewing…', 'PR https://x/pull/1' }, texts, 'notes')
end)

H.test('review and conflict messages; findings as quickfix items', function()
  local a = landing_rec({ name = 'left' })
  local r = {
    id = 'r', name = 'review-left', state = 'succeeded', verdict = 'request_changes', summary = 'wrong greeting',
    findings = {
      { file = 'shared.txt', line = 3, severity = 'high', message = 'say hello' },
      { message = 'and add a test' },
    },
  }
  local msg, level = format.review_notification(a, r)
  H.eq('bgagents: review of left by review-left: changes requested, 2 findings — wrong greeting (:BgAgents findings left)', msg, 'review message')
  H.eq(vim.log.levels.WARN, level, 'level')
  local ok_msg, ok_level = format.review_notification(a, { name = 'rv', verdict = 'approve' })
  H.eq('bgagents: review of left by rv: approved, 0 findings', ok_msg, 'approval')
  H.eq(vim.log.levels.INFO, ok_level, 'approval level')
  H.contains(format.review_notification(a, { name = 'rv', error = 'the reviewer failed: boom' }), 'gave no verdict: the reviewer failed: boom')
  H.eq('bgagents: left conflicts with right in a.txt, b.txt — merging both needs a resolution (:BgAgents integrate left right)',
    format.conflict_notification(a, { agent = 'id-right', name = 'right', files = { 'a.txt', 'b.txt' } }), 'conflict message')
  H.contains(format.conflict_notification(a, { base = 'main', files = { 'a.txt' } }), 'left conflicts with main in a.txt')
  H.contains(require('bgagents.client').message({ code = -32050, message = 'the GitHub CLI (gh) is not installed, so no pull request can be opened: install it (https://cli.github.com) and run `gh auth login`, or run `bgagents push left` and open the pull request on your forge' }),
    'or run `:BgAgents push left` and open', 'the CLI command mapped to the plugin\'s')
  local items = format.findings_items(r, '/wt/left/')
  H.eq({ filename = '/wt/left/shared.txt', lnum = 3, col = 1, text = '[high] say hello', type = 'E' }, items[1], 'a finding at a line')
  H.eq({ text = 'and add a test', type = 'I' }, items[2], 'a finding without a place')
end)

H.test('a review ending and a new conflict are notified once', function()
  local state = require('bgagents.state')
  local function count(text, from)
    local n = 0
    for i = from + 1, #H.notes do
      if H.notes[i].msg:find(text, 1, true) then
        n = n + 1
      end
    end
    return n
  end
  local from = #H.notes
  local left = landing_rec({ name = 'left' })
  local right = landing_rec({ name = 'right' })
  state.update(vim.deepcopy(left), true)
  state.update(vim.deepcopy(right), true)
  -- a review starts, then ends with a verdict
  local reviewing = vim.tbl_extend('force', left, {
    updatedAt = '2026-11-21T16:00:02Z',
    reviews = { { id = 'rv1', name = 'review-left', state = 'running' } },
  })
  state.update(vim.deepcopy(reviewing), true)
  H.eq(0, count('review of left', from), 'no message while the review runs')
  local reviewed = vim.tbl_extend('force', left, {
    updatedAt = '2026-11-21T16:00:03Z',
    reviews = { { id = 'rv1', name = 'review-left', state = 'succeeded', verdict = 'approve', findings = {} } },
  })
  state.update(vim.deepcopy(reviewed), true)
  local later = vim.tbl_extend('force', reviewed, { updatedAt = '2026-11-21T16:00:04Z' })
  state.update(vim.deepcopy(later), true)
  H.eq(1, count('review of left by review-left: approved, 0 findings', from), 'the verdict, once')
  -- the reviewer finishing is not notified besides
  state.update(landing_rec({ name = 'review-left', id = 'rv1', reviewOf = left.id, state = 'running' }), true)
  state.update(landing_rec({ name = 'review-left', id = 'rv1', reviewOf = left.id, updatedAt = '2026-11-21T16:00:05Z' }), true)
  H.eq(0, count('review-left finished', from), 'the reviewer finishing')
  -- both sides of a conflict report it: one message
  local function conflicting(a, other, at)
    local r = vim.deepcopy(state.agents[a.id])
    r.updatedAt = at
    r.conflicts = other and { { agent = other.id, name = other.name, files = { 'shared.txt' } } } or nil
    return r
  end
  state.update(conflicting(left, right, '2026-11-21T16:00:06Z'), true)
  state.update(conflicting(right, left, '2026-11-21T16:00:06Z'), true)
  state.update(conflicting(right, left, '2026-11-21T16:00:07Z'), true)
  H.eq(1, count('conflicts with', from), 'one conflict message for the pair')
  H.eq(vim.log.levels.WARN, H.note('left conflicts with right in shared.txt', from).level, 'level')
  -- gone on both sides, then back: news again
  state.update(conflicting(left, nil, '2026-11-21T16:00:08Z'), true)
  state.update(conflicting(right, nil, '2026-11-21T16:00:08Z'), true)
  state.update(conflicting(right, left, '2026-11-21T16:00:09Z'), true)
  H.eq(2, count('conflicts with', from), 'a conflict that came back')
  -- notify.conflicts = false silences them
  bg.setup({ attach = false, notify = { conflicts = false } })
  local other = landing_rec({ name = 'other3' })
  state.update(vim.deepcopy(other), true)
  state.update(conflicting(other, left, '2026-11-21T16:00:10Z'), true)
  H.eq(2, count('conflicts with', from), 'notify.conflicts = false')
  bg.setup({})
  for _, id in ipairs({ left.id, right.id, other.id, 'rv1' }) do
    state.agents[id] = nil
  end
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
