-- :BgAgents {subcommand} …: one user command whose subcommands are the
-- entries of M.subcommands, each with impl(args, opts), optional
-- complete(arglead, words), whether it takes a bang and a range. Without a
-- subcommand, vim.ui.select offers them. The functions behind them (spawn,
-- open, diff, …) are also called by the list window's keys.
local client = require('bgagents.client')
local compat = require('bgagents.compat')
local config = require('bgagents.config')
local format = require('bgagents.format')
local protocol = require('bgagents.protocol')
local state = require('bgagents.state')
local ui = require('bgagents.ui')

local M = {}
local req = protocol.requests

local function err(msg)
  vim.notify('bgagents: ' .. msg, vim.log.levels.ERROR, { title = 'bgagents' })
end

local function info(msg)
  vim.notify('bgagents: ' .. msg, vim.log.levels.INFO, { title = 'bgagents' })
end

--- The repository a command is about, or nil after telling the user.
local function repo(root)
  if root then
    return root, select(2, client.repo_of(root)) or root
  end
  local r, main = client.current()
  if not r then
    err('not inside a git repository: open a file of one, or :cd into one')
    return nil
  end
  return r, main
end

-- Which agents each kind of command can act on, for pickers and completion.
local filters = {
  any = nil,
  live = function(a)
    return format.is_live(a.state)
  end,
  worktree = function(a)
    return a.state ~= 'merged' and a.state ~= 'discarded' and not a.cleaned
  end,
  kept = function(a)
    return a.state ~= 'merged' and a.state ~= 'discarded'
  end,
  followup = function(a)
    return (a.state == 'needs_input' or a.state == 'succeeded' or a.state == 'failed') and not a.cleaned
  end,
  -- finished work that is still on its branch: review, push, pr, integrate
  landable = function(a)
    return not format.is_active(a.state) and a.state ~= 'merged' and a.state ~= 'discarded'
      and not a.cleaned and not a.readOnly and (a.reviewOf or '') == ''
  end,
  reviewed = function(a)
    return type(a.reviews) == 'table' and #a.reviews > 0
  end,
  -- a pipeline step can follow an agent that has not failed
  followable = function(a)
    return a.state ~= 'failed' and a.state ~= 'lost' and a.state ~= 'cancelled' and a.state ~= 'discarded'
      and not a.readOnly
  end,
}

--- Calls cb(ref) with `ref`, or with an agent chosen with vim.ui.select.
local function with_agent(ref, main, filter, what, cb)
  if ref and ref ~= '' then
    return cb(ref)
  end
  -- in the list, the agent on the cursor's row
  local here = ui.agent_at_cursor()
  if here and (not filters[filter] or filters[filter](here)) then
    return cb(here.id)
  end
  local agents = state.list(main, filters[filter])
  if #agents == 0 then
    return err(string.format('no agent to %s in %s', what, main))
  end
  vim.ui.select(agents, {
    prompt = 'Agent to ' .. what .. ': ',
    kind = 'bgagents.agent',
    format_item = function(a)
      return string.format('%s  %s  %s', a.name, a.state, (a.task:gsub('\n', ' ')):sub(1, 60))
    end,
  }, function(a)
    if a then
      cb(a.id)
    end
  end)
end

--- The name of agent `ref` for messages.
local function label(ref, root)
  local a = state.find(ref, root and select(2, client.repo_of(root)))
  return a and a.name or ref
end

--- The agents that can run, for the picker: usable ones of bgagents/agents,
--- the default first.
local function runnable(result)
  local out = {}
  for _, a in ipairs(result.agents or {}) do
    if a.installed and not a.problem then
      if a.name == result.default then
        table.insert(out, 1, a)
      else
        out[#out + 1] = a
      end
    end
  end
  return out
end

--- Asks for agent and model; cb(agent, model). The agents are setup{}'s
--- `agents`, else what the daemon says the repository can run
--- (bgagents/agents); the models are the chosen agent's configured model
--- and setup{}'s `models` for it.
local function choose_agent(root, flags, cb)
  local infos = {} -- name -> AgentInfo
  local function pick_model(agent)
    if flags.model then
      return cb(agent, flags.model)
    end
    local models = {}
    local configured = agent and infos[agent] and infos[agent].model
    if configured and configured ~= '' then
      models[1] = configured
    end
    local extra = agent and config.values.models[agent] or nil
    for _, m in ipairs(type(extra) == 'table' and extra or {}) do
      if not vim.tbl_contains(models, m) then
        models[#models + 1] = m
      end
    end
    if #models == 0 or (#models == 1 and models[1] == configured) then
      return cb(agent, nil)
    elseif #models == 1 then
      return cb(agent, models[1])
    end
    vim.ui.select(models, { prompt = 'Model for ' .. agent .. ': ', kind = 'bgagents.model' }, function(m)
      if m then
        cb(agent, m ~= configured and m or nil)
      end
    end)
  end
  local function pick(names, format_item)
    if #names == 0 then
      return pick_model(nil)
    elseif #names == 1 then
      return pick_model(names[1])
    end
    vim.ui.select(names, { prompt = 'Agent: ', kind = 'bgagents.agent_name', format_item = format_item }, function(a)
      if a then
        pick_model(a)
      end
    end)
  end
  if flags.agent then
    return pick_model(flags.agent)
  end
  local agents = config.values.agents
  if #agents > 0 then
    return pick(agents)
  end
  if not config.values.ask_agent or not root then
    return pick_model(nil)
  end
  client.agents(root, function(e, result)
    if e or not result then
      return pick_model(nil) -- an older daemon: its default agent
    end
    local names = {}
    for _, a in ipairs(runnable(result)) do
      infos[a.name] = a
      names[#names + 1] = a.name
    end
    pick(names, function(n)
      local a = infos[n]
      return string.format('%s (%s%s)%s', n, a.provider, a.model and (', ' .. a.model) or '', n == result.default and '  default' or '')
    end)
  end)
end

local function started(agent)
  state.update(agent, false)
  info(string.format('%s started on branch %s', agent.name, agent.branch))
end

-- ---- The functions behind the subcommands ------------------------------

--- What the spawn of `result` started: one agent, or the variants of a
--- fan-out; a pipeline step says what it waits for.
---@param result bgagents.SpawnResult
local function spawned(result)
  local all = (type(result.agents) == 'table' and #result.agents > 0) and result.agents or { result.agent }
  for _, a in ipairs(all) do
    state.update(a, false)
  end
  local a = all[1]
  if #all > 1 then
    local names = {}
    for i, v in ipairs(all) do
      names[i] = v.name
    end
    return info(string.format('%d variants started: %s', #all, table.concat(names, ', ')))
  end
  if a.after and a.after ~= '' and a.state == 'queued' then
    local dep = state.agents[a.after]
    return info(string.format('%s queued after %s: it starts on %s once that succeeds', a.name, dep and dep.name or a.after, a.base ~= '' and a.base or 'its branch'))
  end
  started(a)
end

--- spawn [--agent A]… [--model M] [--name N] [--base B] [--read-only]
---       [--after AGENT] [--variants N] [TASK]
function M.spawn(args)
  local flags, task = format.parse_flags(args, {
    agent = 'list',
    model = 'v',
    name = 'v',
    base = 'v',
    ['read-only'] = true,
    after = 'v',
    variants = 'number',
  })
  if not flags then
    return err('spawn: ' .. task)
  end
  if flags.variants and (flags.variants < 1 or flags.variants > 10) then
    return err(string.format('spawn: --variants must be between 1 and 10, not %d', flags.variants))
  end
  if flags.after and flags.base then
    return err('spawn: --after starts on that agent\'s branch; leave out --base')
  end
  local root = repo()
  if not root then
    return
  end
  local names = flags.agent or {}
  local function go(t)
    local function send(agent, model, agents)
      client.request(root, req.spawn, {
        task = t,
        repo = root,
        agent = agent,
        agents = agents,
        model = model,
        name = flags.name,
        base = flags.base,
        readOnly = flags['read-only'] or nil,
        after = flags.after,
        variants = flags.variants,
      }, function(e, result)
        if e then
          return err('spawn: ' .. e)
        end
        spawned(result)
      end)
    end
    if #names > 1 then
      return send(nil, flags.model, names) -- the variants take them in turn
    end
    choose_agent(root, { agent = names[1], model = flags.model }, function(agent, model)
      send(agent, model, nil)
    end)
  end
  if task ~= '' then
    return go(task)
  end
  vim.ui.input({ prompt = flags.variants and string.format('Task for %d variants: ', flags.variants) or 'Task for a new agent: ' }, function(t)
    if t and t:match('%S') then
      go(vim.trim(t))
    end
  end)
end

--- Sends SendToAgentArgs through `send` (the selection) or the code action.
local function send_args(root, args, flags, done)
  local function go(task)
    if task and task ~= '' then
      args.task = task
    end
    choose_agent(root, flags, function(agent, model)
      args.agent = agent or args.agent
      args.model = model or args.model
      args.name = flags.name or args.name
      args.base = flags.base or args.base
      done(args)
    end)
  end
  if args.task or not config.values.ask_task then
    return go(args.task)
  end
  vim.ui.input({ prompt = 'Task for the selection (empty: improve it): ' }, function(t)
    if t == nil then
      return -- cancelled
    end
    go(vim.trim(t))
  end)
end

local function execute(root, args)
  client.request(root, 'workspace/executeCommand', {
    command = protocol.send_to_agent_command,
    arguments = { args },
  }, function(e, result)
    if e then
      return err('send: ' .. e)
    end
    started(result.agent)
  end)
end

-- The byte length of the UTF-8 character starting at byte `i` of `s`.
local function char_len(s, i)
  local c = s:sub(i):match('^[%z\1-\127\194-\244][\128-\191]*')
  return c and #c or 1
end

--- The selection of a :BgAgents command with a range: LSP range and text.
--- A characterwise Visual selection on those lines is cut at its columns.
function M.selection(buf, opts)
  local l1, l2 = opts.line1, opts.line2
  local lines = vim.api.nvim_buf_get_lines(buf, l1 - 1, l2, false)
  if #lines == 0 then
    return nil
  end
  local sc, ec = 0, #lines[#lines]
  local s, e = vim.fn.getpos("'<"), vim.fn.getpos("'>")
  if opts.range == 2 and vim.fn.visualmode() == 'v' and s[2] == l1 and e[2] == l2 then
    sc = math.min(s[3] - 1, #lines[1])
    local last = lines[#lines]
    if e[3] > #last then
      ec = #last
    else
      ec = e[3] - 1 + char_len(last, e[3])
    end
  end
  local text = vim.deepcopy(lines)
  text[#text] = text[#text]:sub(1, ec)
  text[1] = text[1]:sub(sc + 1)
  return {
    range = {
      start = { line = l1 - 1, character = compat.utf16_col(lines[1], sc) },
      ['end'] = { line = l2 - 1, character = compat.utf16_col(lines[#lines], ec) },
    },
    text = table.concat(text, '\n'),
  }
end

--- send [--agent A] [--model M] [--name N] [TASK], for the range.
function M.send(args, opts)
  local buf = vim.api.nvim_get_current_buf()
  local file = vim.api.nvim_buf_get_name(buf)
  local root = vim.bo[buf].buftype == '' and file ~= '' and client.repo_of(file) or nil
  if not root then
    return err('send: the current buffer is not a file inside a git repository')
  end
  local flags, task = format.parse_flags(args, { agent = 'v', model = 'v', name = 'v', base = 'v' })
  if not flags then
    return err('send: ' .. task)
  end
  local sel = M.selection(buf, opts)
  if not sel then
    return err('send: nothing selected')
  end
  local a = { uri = vim.uri_from_fname(file), range = sel.range, text = sel.text }
  if task ~= '' then
    a.task = task
  end
  send_args(root, a, flags, function(full)
    execute(root, full)
  end)
end

--- The command of the code action "Send to background agent" (a client
--- command: it asks for the task and agent, then runs it on the daemon).
function M.send_code_action(command, ctx)
  local c = vim.lsp.get_client_by_id(ctx.client_id)
  if not c then
    return err('send: the bgagents client has stopped')
  end
  local args = vim.deepcopy((command.arguments or {})[1] or {})
  send_args(c.config.root_dir, args, {}, function(full)
    compat.request(c, 'workspace/executeCommand', {
      command = command.command,
      arguments = { full },
    }, function(e, result)
      if e then
        return err('send: ' .. client.message(e))
      end
      started(result.agent)
    end, ctx.bufnr)
  end)
end

function M.open(ref, root)
  local main
  root, main = repo(root)
  if not root then
    return
  end
  with_agent(ref, main, 'worktree', 'open', function(id)
    client.request(root, req.openWorktree, { id = id, repo = root }, function(e, result)
      if e then
        return err('open ' .. id .. ': ' .. e)
      end
      ui.open_worktree(result.path, state.find(id, main))
    end)
  end)
end

function M.diff(ref, root)
  local main
  root, main = repo(root)
  if not root then
    return
  end
  with_agent(ref, main, 'kept', 'diff', function(id)
    client.request(root, req.diff, { id = id, repo = root }, function(e, result)
      if e then
        return err('diff ' .. id .. ': ' .. e)
      end
      ui.show_diff(result, root, main)
    end)
  end)
end

function M.log(ref, root)
  local main
  root, main = repo(root)
  if not root then
    return
  end
  with_agent(ref, main, 'kept', 'show the log of', function(id)
    client.request(root, req.get, { id = id, repo = root }, function(e, result)
      if e then
        return err('log ' .. id .. ': ' .. e)
      end
      state.update(result.agent, false)
      ui.show_log(result.agent, root, main)
    end)
  end)
end

function M.msg(ref, text, allow, root)
  local main
  root, main = repo(root)
  if not root then
    return
  end
  with_agent(ref, main, 'followup', 'message', function(id)
    local function go(t)
      client.request(root, req.message, { id = id, repo = root, text = t, allowDenied = allow or nil }, function(e, result)
        if e then
          return err('msg ' .. label(id, root) .. ': ' .. e)
        end
        state.update(result.agent, false)
        info(string.format('%s: %s (follow-up %d)', result.agent.name, result.agent.state, result.agent.runs or 0))
      end)
    end
    if text and text:match('%S') then
      return go(text)
    end
    vim.ui.input({ prompt = 'Message to ' .. label(id, root) .. ': ' }, function(t)
      if t and t:match('%S') then
        go(vim.trim(t))
      end
    end)
  end)
end

local function simple(method, what, filter)
  return function(ref, root, extra)
    local main
    root, main = repo(root)
    if not root then
      return
    end
    with_agent(ref, main, filter, what, function(id)
      local params = vim.tbl_extend('force', { id = id, repo = root }, extra or {})
      client.request(root, method, params, function(e, result, raw)
        if e then
          return err(string.format('%s %s: %s', what, label(id, root), e), raw)
        end
        state.update(result.agent, false)
        info(string.format('%s: %s', result.agent.name, result.agent.state))
      end)
    end)
  end
end

M.cancel = simple(req.cancel, 'cancel', 'live')

local merge = simple(req.merge, 'merge', 'worktree')
function M.merge(ref, flags, root)
  merge(ref, root, { strategy = flags.squash and 'squash' or nil, into = flags.into })
end

--- discard[!]: `ask` (from the list) offers to force when refused.
function M.discard(ref, force, root, ask)
  local main
  root, main = repo(root)
  if not root then
    return
  end
  with_agent(ref, main, 'worktree', 'discard', function(id)
    client.request(root, req.discard, { id = id, repo = root, force = force or nil }, function(e, result, raw)
      if e then
        if ask and not force and raw and raw.code == protocol.error_codes.Refused then
          return vim.ui.select({ 'Keep it', 'Discard it anyway' }, {
            prompt = e:gsub(';.*$', '') .. '. ',
            kind = 'bgagents.confirm',
          }, function(choice)
            if choice == 'Discard it anyway' then
              M.discard(id, true, root, false)
            end
          end)
        end
        return err(string.format('discard %s: %s', label(id, root), e))
      end
      state.update(result.agent, false)
      info(string.format('%s: %s', result.agent.name, result.agent.state))
    end)
  end)
end

--- review [AGENT] [--agent A] [--model M]: a read-only reviewer in a
--- fresh context; its verdict arrives on the agent (a notification and the
--- list). Without --agent the daemon picks ([review] agent, else the
--- writer's agent).
function M.review(ref, flags, root)
  local main
  root, main = repo(root)
  if not root then
    return
  end
  flags = flags or {}
  with_agent(ref, main, 'landable', 'review', function(id)
    client.request(root, req.review, { id = id, repo = root, agent = flags.agent, model = flags.model }, function(e, result)
      if e then
        return err(string.format('review %s: %s', label(id, root), e))
      end
      state.update(result.agent, false)
      info(string.format('%s is reviewing %s with %s (read-only, in a fresh context); its verdict will be notified', result.agent.name, label(id, root), result.agent.agent))
    end)
  end)
end

--- findings [AGENT]: the findings of the agent's latest review that ended,
--- in the quickfix list.
function M.findings(ref, root)
  local main
  root, main = repo(root)
  if not root then
    return
  end
  with_agent(ref, main, 'reviewed', 'show the review findings of', function(id)
    local function show(a)
      local latest, ended = format.latest_review(a)
      if not latest then
        return err(string.format('%s has no review yet: :BgAgents review %s', a.name, a.name))
      elseif not ended then
        return info(string.format('the review of %s by %s is still %s', a.name, latest.name, latest.state))
      end
      local n = ui.show_findings(a, ended)
      local msg = string.format('review of %s by %s: %s, %s', a.name, ended.name, (ended.verdict or '') ~= '' and format.verdict_text(ended.verdict) or ('no verdict: ' .. (ended.error or '')), format.plural(n, 'finding'))
      if (ended.summary or '') ~= '' then
        msg = msg .. ' — ' .. ended.summary
      end
      if latest ~= ended then
        msg = msg .. string.format(' (a newer review by %s is %s)', latest.name, latest.state)
      end
      info(msg)
    end
    local known = state.find(id, main)
    if known then
      return show(known)
    end
    client.request(root, req.get, { id = id, repo = root }, function(e, result)
      if e then
        return err(string.format('findings %s: %s', id, e))
      end
      state.update(result.agent, false)
      show(result.agent)
    end)
  end)
end

--- push [AGENT] [--remote R]
function M.push(ref, flags, root)
  local main
  root, main = repo(root)
  if not root then
    return
  end
  flags = flags or {}
  with_agent(ref, main, 'landable', 'push', function(id)
    client.request(root, req.push, { id = id, repo = root, remote = flags.remote }, function(e, result)
      if e then
        return err(string.format('push %s: %s', label(id, root), e))
      end
      state.update(result.agent, false)
      local p = result.agent.pushed or {}
      info(string.format('%s pushed to %s/%s (%s)', result.agent.name, p.remote or '?', p.branch or '?', (p.commit or ''):sub(1, 12)))
    end)
  end)
end

--- pr [AGENT] [--draft] [--base B] [--title T] [--remote R]: push, then a
--- pull request with the GitHub CLI; its URL is notified.
function M.pr(ref, flags, root)
  local main
  root, main = repo(root)
  if not root then
    return
  end
  flags = flags or {}
  with_agent(ref, main, 'landable', 'open a pull request for', function(id)
    local params = {
      id = id,
      repo = root,
      remote = flags.remote,
      base = flags.base,
      title = flags.title,
      draft = flags.draft or nil,
    }
    client.request(root, req.pullRequest, params, function(e, result)
      if e then
        return err(string.format('pr %s: %s', label(id, root), e))
      end
      state.update(result.agent, false)
      info(string.format('%s: pull request %s', result.agent.name, result.agent.pullRequest or '?'))
    end)
  end)
end

--- integrate AGENT AGENT… [--agent A] [--model M] [--task T] [--name N]
--- [--base B]. One agent of a fan-out stands for its group's variants.
function M.integrate(refs, flags, root)
  local main
  root, main = repo(root)
  if not root then
    return
  end
  flags = flags or {}
  refs = refs or {}
  if #refs == 0 then
    local here = ui.agent_at_cursor()
    if here then
      refs = { here.id }
    end
  end
  if #refs == 1 then
    local a = state.find(refs[1], main)
    if a and a.group and a.group ~= '' then
      refs = {}
      for _, v in ipairs(format.grouped(state.list(main, function(x)
        return x.group == a.group and filters.landable(x)
      end))) do
        refs[#refs + 1] = v.id
      end
      if #refs < 2 then
        return err(string.format('integrate: fewer than two variants of %s have finished work to integrate', format.group_label(a)))
      end
    end
  end
  if #refs < 2 then
    return err('integrate needs two or more agents (or one variant of a fan-out, for its group): integrate AGENT AGENT…')
  end
  client.request(root, req.integrate, {
    ids = refs,
    repo = root,
    task = flags.task,
    name = flags.name,
    agent = flags.agent,
    model = flags.model,
    base = flags.base,
  }, function(e, result)
    if e then
      return err('integrate: ' .. e)
    end
    state.update(result.agent, false)
    local names = {}
    for i, id in ipairs(result.agent.integrates or refs) do
      names[i] = label(id, root)
    end
    info(string.format('%s integrates %s on branch %s', result.agent.name, table.concat(names, ', '), result.agent.branch))
  end)
end

-- ---- The subcommand table ----------------------------------------------

--- Names of the agents of the current repository that `filter` accepts.
local function complete_agents(filter)
  return function(arglead, words)
    if #words > 2 then
      return {}
    end
    local root, main = client.current()
    if not main then
      return {}
    end
    client.snapshot(root)
    local names = {}
    for _, a in ipairs(state.list(main, filters[filter])) do
      if a.name:sub(1, #arglead) == arglead then
        names[#names + 1] = a.name
      end
    end
    table.sort(names)
    return names
  end
end

--- Names of the agents of the current repository that `filter` accepts
--- and start with `arglead`, whatever the position.
local function agent_names(filter, arglead)
  local root, main = client.current()
  if not main then
    return {}
  end
  client.snapshot(root)
  local names = {}
  for _, a in ipairs(state.list(main, filters[filter])) do
    if a.name:sub(1, #arglead) == arglead then
      names[#names + 1] = a.name
    end
  end
  table.sort(names)
  return names
end

local function complete_flags(flags)
  return function(arglead, words)
    local prev = words[#words - 1]
    if prev == '--after' then
      return agent_names('followable', arglead)
    end
    if prev == '--agent' then
      local names = config.values.agents
      if #names == 0 then
        local result = client.agents_sync((client.current()))
        names = {}
        for _, a in ipairs(result and result.agents or {}) do
          names[#names + 1] = a.name
        end
      end
      return vim.tbl_filter(function(n)
        return n:sub(1, #arglead) == arglead
      end, names)
    end
    if arglead:sub(1, 1) == '-' then
      return vim.tbl_filter(function(f)
        return f:sub(1, #arglead) == arglead
      end, flags)
    end
    return {}
  end
end

--- Completion of a subcommand taking flags and agents in any order: after
--- a flag that takes a value, its values (agent names after --agent); a
--- word starting with "-", the flags; else the agents `filter` accepts
--- (only the first agent unless `multi`).
---@param valued table<string, boolean> the flags (of `flags`) that take a value
local function complete_mixed(filter, flags, valued, multi)
  return function(arglead, words)
    local prev = words[#words - 1]
    if prev and valued[prev] then
      if prev == '--agent' then
        return complete_flags(flags)(arglead, words)
      end
      return {}
    end
    if arglead:sub(1, 1) == '-' then
      return complete_flags(flags)(arglead, words)
    end
    if not multi then
      -- words[1] is the subcommand, the last one is being typed
      for i = 2, #words - 1 do
        if words[i]:sub(1, 1) ~= '-' and not valued[words[i - 1]] then
          return {}
        end
      end
    end
    return agent_names(filter, arglead)
  end
end

-- Splits "REF rest…" into the agent reference and the rest.
local function ref_and_rest(args)
  local ref, rest = (args or ''):match('^%s*(%S*)%s*(.-)%s*$')
  return ref ~= '' and ref or nil, rest or ''
end

local function one_agent(name, fn)
  return function(args)
    local ref, rest = ref_and_rest(args)
    if rest ~= '' then
      return err(string.format('%s takes one agent (a name, id or id prefix), not %q', name, args))
    end
    fn(ref)
  end
end

---@class bgagents.Subcommand
---@field impl fun(args: string, opts: table)
---@field complete? fun(arglead: string, words: string[]): string[]
---@field bang? boolean accepts !
---@field desc string

---@type table<string, bgagents.Subcommand>
M.subcommands = {
  spawn = {
    desc = 'start an agent on a task: spawn [--agent A]… [--model M] [--name N] [--base B] [--read-only] [--after AGENT] [--variants N] [TASK]',
    impl = function(args)
      M.spawn(args)
    end,
    complete = complete_flags({ '--agent', '--model', '--name', '--base', '--read-only', '--after', '--variants' }),
  },
  send = {
    desc = 'send the selected lines to a new agent: :\'<,\'>BgAgents send [--agent A] [TASK]',
    impl = function(args, opts)
      M.send(args, opts)
    end,
    complete = complete_flags({ '--agent', '--model', '--name', '--base' }),
  },
  list = {
    desc = 'the agents of this repository, updated live (list! for every repository)',
    bang = true,
    impl = function(args, opts)
      if args ~= '' then
        return err('list takes no arguments')
      end
      local root, main = repo()
      if root then
        ui.open_list(root, main, opts.bang)
      end
    end,
  },
  open = {
    desc = 'open the worktree of an agent in a new tabpage',
    impl = one_agent('open', function(ref)
      M.open(ref)
    end),
    complete = complete_agents('worktree'),
  },
  diff = {
    desc = 'show the changes of an agent',
    impl = one_agent('diff', function(ref)
      M.diff(ref)
    end),
    complete = complete_agents('any'),
  },
  log = {
    desc = 'show what an agent did, following it live',
    impl = one_agent('log', function(ref)
      M.log(ref)
    end),
    complete = complete_agents('any'),
  },
  msg = {
    desc = 'send a follow-up to an agent: msg[!] AGENT TEXT (! allows the tools it was refused)',
    bang = true,
    impl = function(args, opts)
      local ref, text = ref_and_rest(args)
      M.msg(ref, text, opts.bang)
    end,
    complete = complete_agents('followup'),
  },
  cancel = {
    desc = 'stop a running agent',
    impl = one_agent('cancel', function(ref)
      M.cancel(ref)
    end),
    complete = complete_agents('live'),
  },
  merge = {
    desc = 'merge the branch of an agent: merge AGENT [--squash] [--into BRANCH]',
    impl = function(args)
      local ref, rest = ref_and_rest(args)
      if ref and ref:sub(1, 1) == '-' then
        ref, rest = nil, args -- flags only: the agent is chosen
      end
      local flags, extra = format.parse_flags(rest, { squash = true, into = 'v' })
      if not flags then
        return err('merge: ' .. extra)
      elseif extra ~= '' then
        return err(string.format('merge takes one agent and --squash or --into BRANCH, not %q', args))
      end
      M.merge(ref, flags)
    end,
    complete = function(arglead, words)
      if #words > 2 then
        return complete_flags({ '--squash', '--into' })(arglead, words)
      end
      return complete_agents('worktree')(arglead, words)
    end,
  },
  review = {
    desc = 'start a read-only reviewer on an agent\'s work, in a fresh context: review [--agent A] [--model M] AGENT',
    impl = function(args)
      local flags, words = format.parse_args(args, { agent = 'v', model = 'v' })
      if not flags then
        return err('review: ' .. words)
      elseif #words > 1 then
        return err(string.format('review takes one agent (and --agent, --model), not %q', args))
      end
      M.review(words[1], flags)
    end,
    complete = complete_mixed('landable', { '--agent', '--model' }, { ['--agent'] = true, ['--model'] = true }),
  },
  findings = {
    desc = 'put the findings of an agent\'s latest review in the quickfix list',
    impl = one_agent('findings', function(ref)
      M.findings(ref)
    end),
    complete = complete_agents('reviewed'),
  },
  push = {
    desc = 'push the branch of an agent: push AGENT [--remote R]',
    impl = function(args)
      local flags, words = format.parse_args(args, { remote = 'v' })
      if not flags then
        return err('push: ' .. words)
      elseif #words > 1 then
        return err(string.format('push takes one agent (and --remote), not %q', args))
      end
      M.push(words[1], flags)
    end,
    complete = complete_mixed('landable', { '--remote' }, { ['--remote'] = true }),
  },
  pr = {
    desc = 'push an agent\'s branch and open a pull request (GitHub CLI): pr AGENT [--draft] [--base B] [--title T] [--remote R]',
    impl = function(args)
      local flags, words = format.parse_args(args, { draft = true, base = 'v', title = 'v', remote = 'v' })
      if not flags then
        return err('pr: ' .. words)
      elseif #words > 1 then
        return err(string.format('pr takes one agent (quote a --title of several words), not %q', args))
      end
      M.pr(words[1], flags)
    end,
    complete = complete_mixed(
      'landable',
      { '--draft', '--base', '--title', '--remote' },
      { ['--base'] = true, ['--title'] = true, ['--remote'] = true }
    ),
  },
  integrate = {
    desc = 'start an agent on a branch merging several agents\' branches: integrate AGENT AGENT… [--agent A] [--task T]',
    impl = function(args)
      local flags, words = format.parse_args(args, { agent = 'v', model = 'v', task = 'v', name = 'v', base = 'v' })
      if not flags then
        return err('integrate: ' .. words)
      end
      M.integrate(words, flags)
    end,
    complete = complete_mixed(
      'landable',
      { '--agent', '--model', '--task', '--name', '--base' },
      { ['--agent'] = true, ['--model'] = true, ['--task'] = true, ['--name'] = true, ['--base'] = true },
      true
    ),
  },
  discard = {
    desc = 'throw away the worktree and branch of an agent (discard! also unmerged work)',
    bang = true,
    impl = function(args, opts)
      one_agent('discard', function(ref)
        M.discard(ref, opts.bang)
      end)(args)
    end,
    complete = complete_agents('worktree'),
  },
}

function M.names()
  local names = vim.tbl_keys(M.subcommands)
  table.sort(names)
  return names
end

--- Runs `name` with `args` (the text after it) and the command's opts.
--- The bang may follow the subcommand (`discard! x`) or the command
--- (`BgAgents! discard x`).
function M.dispatch(name, args, opts)
  if name:sub(-1) == '!' then
    name = name:sub(1, -2)
    opts = vim.tbl_extend('force', opts, { bang = true })
  end
  local sub = M.subcommands[name]
  if not sub then
    return err(string.format('unknown subcommand %q; use one of: %s', name, table.concat(M.names(), ', ')))
  end
  if opts.bang and not sub.bang then
    return err(string.format('%s does not take !', name))
  end
  local ok, e = pcall(sub.impl, args or '', opts)
  if not ok then
    err(name .. ': ' .. tostring(e))
  end
end

--- The :BgAgents command.
function M.run(opts)
  require('bgagents').ensure_setup()
  local name, args = (opts.args or ''):match('^%s*(%S+)%s*(.-)%s*$')
  if name then
    return M.dispatch(name, args, opts)
  end
  local names = M.names()
  vim.ui.select(names, {
    prompt = 'BgAgents: ',
    kind = 'bgagents.subcommand',
    format_item = function(n)
      return string.format('%-9s %s', n, M.subcommands[n].desc)
    end,
  }, function(choice)
    if choice then
      M.dispatch(choice, '', opts)
    end
  end)
end

--- Completion of :BgAgents: subcommands, then what each one takes.
function M.complete(arglead, cmdline, cursorpos)
  require('bgagents').ensure_setup()
  local line = cmdline:sub(1, cursorpos or #cmdline)
  local rest = line:match('^.-B%w*!?%s+(.*)$')
  if not rest then
    return {}
  end
  local words = vim.split(rest, '%s+')
  if #words <= 1 then
    return vim.tbl_filter(function(n)
      return n:sub(1, #arglead) == arglead
    end, M.names())
  end
  local sub = M.subcommands[(words[1]:gsub('!$', ''))]
  if not sub or not sub.complete then
    return {}
  end
  return sub.complete(arglead, words)
end

return M
