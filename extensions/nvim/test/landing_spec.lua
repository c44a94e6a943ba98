-- Landing agents' work from Neovim, against the real daemon: conflicts
-- between agents, reviews (a reviewer in a fresh context; its verdict in
-- the list, its findings in the quickfix list), push to a local bare
-- remote, a pull request (through a stand-in gh: GitHub is out of reach),
-- fan-outs, integration and pipelines. The tests run in order and build on
-- each other. The agents are the scripted test agent (internal/testagent),
-- whose task is its script; see makeLandingRepo in nvim_test.go.
--
-- Environment: BGAGENTS_TEST_BIN, BGAGENTS_TEST_REPO, BGAGENTS_TEST_TMP,
-- BGAGENTS_HOME as for the scenario; BGAGENTS_TEST_GATE (a file the first
-- pipeline step waits for), BGAGENTS_TEST_STEP_GATE (the one the "step"
-- agent waits for), BGAGENTS_TEST_GH_CALLS (what the stand-in gh was asked).
local H = require('helpers')

local bin = assert(os.getenv('BGAGENTS_TEST_BIN'), 'BGAGENTS_TEST_BIN')
local repo = assert(os.getenv('BGAGENTS_TEST_REPO'), 'BGAGENTS_TEST_REPO')
local tmp = assert(os.getenv('BGAGENTS_TEST_TMP'), 'BGAGENTS_TEST_TMP')
local gate = assert(os.getenv('BGAGENTS_TEST_GATE'), 'BGAGENTS_TEST_GATE')
local step_gate = assert(os.getenv('BGAGENTS_TEST_STEP_GATE'), 'BGAGENTS_TEST_STEP_GATE')
local gh_calls = assert(os.getenv('BGAGENTS_TEST_GH_CALLS'), 'BGAGENTS_TEST_GH_CALLS')

local bg = require('bgagents')
local opts = { cmd = { bin }, list = { refresh_ms = 0 }, ask_agent = false }

local function touch(path)
  local f = assert(io.open(path, 'w'))
  f:close()
end

local function read(path)
  local f = io.open(path, 'r')
  if not f then
    return nil
  end
  local s = f:read('*a')
  f:close()
  return s
end

-- Whatever happens, the agents waiting for the gates end.
H.after = function()
  touch(gate)
  touch(step_gate)
end

local function agent(name)
  return require('bgagents.state').find(name, repo)
end

local function wait_state(name, st, ms)
  return H.wait(name .. ' to be ' .. st, function()
    local a = agent(name)
    return a and a.state == st and a
  end, ms)
end

local function list_buf()
  return H.buf('bgagents://list/' .. repo)
end

--- The list's row of agent `name`, and its line number.
local function row(name)
  for i, l in ipairs(H.lines(list_buf())) do
    if l:match('^%S+%s+' .. vim.pesc(name) .. '%s') then
      return l, i
    end
  end
end

--- Waits until the row of `name` contains `text`; returns the row.
local function wait_row(name, text)
  return H.wait(string.format('the row of %s to show %q', name, text), function()
    local l = row(name)
    return l and l:find(text, 1, true) and l
  end)
end

local function count_notes(text, from)
  local n = 0
  for i = (from or 0) + 1, #H.notes do
    if H.notes[i].msg:find(text, 1, true) then
      n = n + 1
    end
  end
  return n
end

local function git(...)
  local out = vim.fn.system({ 'git', ... })
  H.eq(0, vim.v.shell_error, 'git ' .. table.concat({ ... }, ' ') .. ': ' .. out)
  return vim.trim(out)
end

--- Puts the cursor on the list's row of `name`, in the list's window.
local function on_row(name)
  local win = vim.fn.win_findbuf(list_buf())[1]
  vim.api.nvim_set_current_win(win)
  local _, lnum = row(name)
  vim.api.nvim_win_set_cursor(win, { H.ok(lnum, 'a row for ' .. name), 0 })
  H.eq(name, require('bgagents.ui').agent_at_cursor().name, 'the agent on the row')
end

H.test('setup; the list of the repository', function()
  vim.cmd('runtime plugin/bgagents.lua')
  H.eq(true, (bg.setup(opts)), 'setup')
  vim.cmd('edit ' .. vim.fn.fnameescape(repo .. '/README.md'))
  vim.cmd('BgAgents list')
  H.wait('the list buffer', list_buf)
  H.wait('the client to be initialized', function()
    local l = require('bgagents.client').list()
    return #l == 1 and l[1].ready
  end)
end)

H.test('two agents writing the same file: both rows show the conflict, notified once', function()
  local from = #H.notes
  vim.cmd('BgAgents spawn --name left write shared.txt left')
  wait_state('left', 'succeeded')
  vim.cmd('BgAgents spawn --name right write shared.txt right')
  wait_state('right', 'succeeded')
  wait_row('left', '⚠ conflicts with right: shared.txt')
  wait_row('right', '⚠ conflicts with left: shared.txt')
  local n = H.wait_note('conflicts with', from)
  H.eq(vim.log.levels.WARN, n.level, 'level')
  H.contains(n.msg, 'in shared.txt', 'the file')
  H.ok(n.msg:find('left conflicts with right', 1, true) or n.msg:find('right conflicts with left', 1, true), 'the pair: ' .. n.msg)
  H.eq(1, count_notes('conflicts with', from), 'one notification for the pair')
end)

H.test('review: the verdict is notified and shown; findings land in the quickfix list', function()
  local from = #H.notes
  vim.cmd('BgAgents review --agent claude left')
  H.wait_note('review-left is reviewing left with claude', from)
  local n = H.wait_note('review of left by review-left: changes requested, 1 finding', from)
  H.eq(vim.log.levels.WARN, n.level, 'level')
  H.contains(n.msg, 'shared.txt keeps one side only', 'the summary')
  wait_row('left', '✗ changes requested (1 finding)')
  local rev = wait_state('review-left', 'succeeded')
  H.eq(agent('left').id, rev.reviewOf, 'the reviewer reviews left')
  H.ok(rev.readOnly, 'the reviewer is read-only')
  wait_row('review-left', 'reviews left')
  H.eq(1, count_notes('review of left', from), 'the verdict is notified once')
  H.eq(0, count_notes('review-left finished', from), 'the reviewer finishing is not notified besides')

  vim.cmd('BgAgents findings left')
  local qf = H.wait('the findings in the quickfix list', function()
    local q = vim.fn.getqflist({ title = 1, items = 1, winid = 1 })
    return q.title:find('review of left', 1, true) and q
  end)
  H.eq(1, #qf.items, 'one finding')
  local item = qf.items[1]
  H.eq(H.realpath(agent('left').worktree .. '/shared.txt'), H.realpath(vim.fn.bufname(item.bufnr)), 'the file, in the worktree')
  H.eq(1, item.lnum, 'the line')
  H.eq('[high] keep both sides', item.text, 'the message')
  H.eq('E', item.type, 'high is an error')
  H.contains(qf.title, 'changes requested', 'the verdict in the title')
  H.ok(qf.winid ~= 0, 'the quickfix window is open')
  vim.cmd('cclose')

  -- R on a row reviews with the daemon's default ([review] agent); f shows it
  on_row('right')
  vim.cmd('normal R')
  H.wait_note('review-right is reviewing right with claude', from)
  H.wait_note('review of right by review-right: changes requested, 1 finding', from)
  wait_row('right', '✗ changes requested (1 finding)')
  on_row('right')
  vim.cmd('normal f')
  H.wait('the findings of right in the quickfix list', function()
    return vim.fn.getqflist({ title = 1 }).title:find('review of right', 1, true)
  end)
  vim.cmd('cclose')
end)

H.test('push to a local bare remote: notified, shown, on the remote', function()
  local bare = tmp .. '/remote.git'
  git('init', '-q', '--bare', bare)
  git('-C', repo, 'remote', 'add', 'origin', bare)
  local from = #H.notes
  vim.cmd('BgAgents push left')
  local n = H.wait_note('left pushed to origin/bgagents/left', from)
  wait_row('left', 'pushed to origin')
  local p = agent('left').pushed
  H.contains(n.msg, p.commit:sub(1, 12), 'the commit')
  H.eq(p.commit, git('--git-dir', bare, 'rev-parse', 'refs/heads/bgagents/left'), 'the branch on the remote')
end)

H.test('pr pushes, opens a pull request with gh and notifies its URL', function()
  local from = #H.notes
  vim.cmd('BgAgents pr right --draft --title "Keep the right side"')
  H.wait_note('right: pull request https://github.com/acme/app/pull/7', from)
  wait_row('right', 'PR https://github.com/acme/app/pull/7')
  local calls = read(gh_calls) or ''
  H.contains(calls, 'auth status', 'gh auth status')
  H.contains(calls, 'pr create --head bgagents/right --title Keep the right side', 'the title, quoted in the command')
  H.contains(calls, '--draft', '--draft')
  H.ok(agent('right').pushed, 'pushed before')
end)

H.test('spawn --variants 2: two agents shown as one group; repeated --agent', function()
  local from = #H.notes
  vim.cmd('BgAgents spawn --variants 2 --name fan write fan.txt same')
  H.wait_note('2 variants started: fan-v1, fan-v2', from)
  local v1 = wait_state('fan-v1', 'succeeded')
  local v2 = wait_state('fan-v2', 'succeeded')
  H.ok(v1.group ~= nil and v1.group == v2.group, 'one group')
  local r1 = wait_row('fan-v1', 'v1/2 of fan')
  local r2 = wait_row('fan-v2', 'v2/2 of fan')
  local _, l1 = row('fan-v1')
  local _, l2 = row('fan-v2')
  H.eq(l1 + 1, l2, 'the variants are next to each other, in order:\n' .. r1 .. '\n' .. r2)

  vim.cmd('BgAgents spawn --agent ta --agent alt --name duo write duo.txt same')
  H.wait_note('2 variants started: duo-v1, duo-v2', from)
  H.eq('ta', wait_state('duo-v1', 'succeeded').agent, 'the first variant runs the first agent')
  H.eq('alt', wait_state('duo-v2', 'succeeded').agent, 'the second variant runs the second agent')
  wait_row('duo-v2', 'v2/2 of duo')
end)

H.test('integrate: several agents, or a variant for its group', function()
  local from = #H.notes
  vim.cmd('BgAgents integrate fan-v1 fan-v2 --agent resolver --name fans --task "Combine the fans"')
  H.wait_note('fans integrates fan-v1, fan-v2 on branch bgagents/fans', from)
  local a = wait_state('fans', 'succeeded')
  H.eq('Combine the fans', a.task, 'the task')
  H.eq({ agent('fan-v1').id, agent('fan-v2').id }, a.integrates, 'integrates')
  wait_row('fans', 'integrates fan-v1, fan-v2')
  vim.cmd('BgAgents integrate duo-v2 --agent resolver --name duos')
  H.wait_note('duos integrates duo-v1, duo-v2', from)
  wait_state('duos', 'succeeded')
  vim.cmd('BgAgents integrate left')
  H.contains(H.wait_note('integrate needs two or more agents', from).msg, 'one variant of a fan-out')
end)

H.test('pipeline: --after shows the step waiting, then running', function()
  local from = #H.notes
  vim.cmd('BgAgents spawn --name first-step waitfile ' .. gate .. '; write step1.txt one')
  wait_state('first-step', 'running')
  vim.cmd('BgAgents spawn --after first-step --agent step --name second-step Build on the first step')
  H.wait_note('second-step queued after first-step', from)
  wait_row('second-step', 'waiting for first-step')
  H.ok(row('second-step'):match('^queued%s'), 'queued: ' .. row('second-step'))
  touch(gate)
  H.wait('the step to run', function()
    local l = row('second-step')
    return l and l:match('^running%s') and l:find('after first-step', 1, true)
  end)
  touch(step_gate)
  local s = wait_state('second-step', 'succeeded')
  H.eq('bgagents/first-step', s.base, 'the step started on the first step\'s branch')
  H.eq('one', git('-C', repo, 'show', s.branch .. ':step1.txt'), 'with its work')
  wait_row('second-step', 'after first-step')
end)

H.test(':checkhealth bgagents reports the remote and gh', function()
  vim.cmd('edit ' .. vim.fn.fnameescape(repo .. '/README.md'))
  vim.cmd('checkhealth bgagents')
  local text = table.concat(H.lines(0), '\n')
  H.contains(text, 'git remotes: origin', 'the remote')
  H.contains(text, 'GitHub CLI: ', 'gh')
  H.ok(not text:find('ERROR', 1, true), 'no errors in\n' .. text)
end)
