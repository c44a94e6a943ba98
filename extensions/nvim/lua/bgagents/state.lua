-- The plugin's copy of the agent records, fed by bgagents/list results,
-- request results and bgagents/agentChanged notifications. A record
-- replaces the stored one only when its updatedAt is later, so the same
-- notification arriving through several clients (one per repository root;
-- every session receives every agent's changes) is applied, announced and
-- notified once.
local config = require('bgagents.config')
local compat = require('bgagents.compat')
local format = require('bgagents.format')

local M = {}

---@type table<string, bgagents.Agent> id -> record
M.agents = {}

local listeners = {}

--- Calls fn(agent, previous) after every applied change.
function M.subscribe(fn)
  listeners[#listeners + 1] = fn
end

-- realpath cache, to match repository paths from buffers and from the daemon.
local real = {}
function M.realpath(p)
  if not p or p == '' then
    return p
  end
  if real[p] == nil then
    real[p] = compat.uv.fs_realpath(p) or p
  end
  return real[p]
end

local function announce(agent, prev)
  compat.user_autocmd('BgAgentsChanged', {
    agent = agent,
    previous_state = prev and prev.state or nil,
  })
  for _, fn in ipairs(listeners) do
    local ok, err = pcall(fn, agent, prev)
    if not ok then
      vim.notify('bgagents: ' .. tostring(err), vim.log.levels.ERROR)
    end
  end
  pcall(vim.cmd, 'redrawstatus!')
end

local function maybe_notify(agent, prev)
  local n = config.values.notify
  if not n.enabled or (prev and prev.state == agent.state) then
    return
  end
  if not vim.tbl_contains(n.states, agent.state) then
    return
  end
  -- a reviewer that finished: the verdict on the reviewed agent says it
  if agent.reviewOf and agent.reviewOf ~= '' and agent.state == 'succeeded' and n.reviews then
    return
  end
  local msg, level = format.notification(agent)
  vim.notify(msg, level, { title = 'bgagents' })
end

-- Reviews whose end was announced (or was already over when first seen),
-- by reviewer id; conflicts announced and still standing, by pair (see
-- conflict_key). A change is announced once however many records repeat it.
local reviews_seen, conflicts_seen = {}, {}

--- The key of a conflict between `a` and another agent (the same from
--- either side) or a's base branch.
local function conflict_key(a, c)
  if c.agent and c.agent ~= '' then
    local x, y = a.id, c.agent
    if y < x then
      x, y = y, x
    end
    return x .. '|' .. y
  end
  return a.id .. '|base:' .. tostring(c.base)
end

local function conflicts_by_key(a)
  local out = {}
  for _, c in ipairs(a and type(a.conflicts) == 'table' and a.conflicts or {}) do
    out[conflict_key(a, c)] = c
  end
  return out
end

--- Announces the landing news in `agent` against `prev`: a review that
--- ended (its verdict and finding count) and a conflict that appeared.
--- `announce`: false for records seen for the first time in a snapshot
--- (what they hold is no news; it is only remembered).
local function landing_news(agent, prev, announce)
  local n = config.values.notify
  local prev_reviews = {}
  for _, r in ipairs(prev and type(prev.reviews) == 'table' and prev.reviews or {}) do
    prev_reviews[r.id] = r
  end
  for _, r in ipairs(type(agent.reviews) == 'table' and agent.reviews or {}) do
    if r.id and format.review_ended(r) and not reviews_seen[r.id] then
      reviews_seen[r.id] = true
      if announce and not format.review_ended(prev_reviews[r.id]) and n.enabled and n.reviews then
        local msg, level = format.review_notification(agent, r)
        vim.notify(msg, level, { title = 'bgagents' })
      end
    end
  end
  local now, before = conflicts_by_key(agent), conflicts_by_key(prev)
  for key, c in pairs(now) do
    if not conflicts_seen[key] then
      conflicts_seen[key] = true
      if announce and not before[key] and n.enabled and n.conflicts then
        vim.notify(format.conflict_notification(agent, c), vim.log.levels.WARN, { title = 'bgagents' })
      end
    end
  end
  -- a conflict gone from this record is over once the other side's
  -- record does not list it either: when it comes back it is news again
  for key, c in pairs(before) do
    if not now[key] then
      local other = c.agent and c.agent ~= '' and M.agents[c.agent] or nil
      if not (other and conflicts_by_key(other)[key]) then
        conflicts_seen[key] = nil
      end
    end
  end
end

--- Applies a record. `from_notification`: it came as bgagents/agentChanged,
--- so a change of state is news worth a notification. Returns true when
--- the record was newer than the stored one.
---@param agent bgagents.Agent
---@param from_notification boolean|nil
function M.update(agent, from_notification, quiet)
  if type(agent) ~= 'table' or not agent.id then
    return false
  end
  local prev = M.agents[agent.id]
  if prev and not format.later(agent.updatedAt, prev.updatedAt) then
    return false
  end
  M.agents[agent.id] = agent
  if from_notification then
    maybe_notify(agent, prev)
  end
  local ok, e = pcall(landing_news, agent, prev, from_notification or prev ~= nil)
  if not ok then
    vim.notify('bgagents: ' .. tostring(e), vim.log.levels.ERROR)
  end
  if not (quiet and not prev) then
    announce(agent, prev)
  end
  return true
end

--- Applies a bgagents/list result; `repo` (a main checkout) was its filter:
--- agents of that repository the daemon no longer lists are dropped.
function M.replace(agents, repo)
  -- An agent seen for the first time (a first snapshot) is no change:
  -- no BgAgentsChanged for it; the listeners (the list) run once.
  local seen, added = {}, false
  for _, a in ipairs(agents or {}) do
    seen[a.id] = true
    if not M.agents[a.id] and M.update(a, false, true) then
      added = true
    elseif M.agents[a.id] then
      M.update(a, false)
    end
  end
  if added then
    for _, fn in ipairs(listeners) do
      pcall(fn, nil, nil)
    end
    pcall(vim.cmd, 'redrawstatus!')
  end
  if repo then
    local r = M.realpath(repo)
    for id, a in pairs(M.agents) do
      if not seen[id] and M.realpath(a.repo) == r then
        M.agents[id] = nil
      end
    end
  end
end

--- Agents of the repository whose main checkout is `repo` (every repository
--- when nil), newest first, optionally only those `keep(agent)` accepts.
---@return bgagents.Agent[]
function M.list(repo, keep)
  local r = repo and M.realpath(repo)
  local out = {}
  for _, a in pairs(M.agents) do
    if (not r or M.realpath(a.repo) == r) and (not keep or keep(a)) then
      out[#out + 1] = a
    end
  end
  table.sort(out, function(a, b)
    if a.createdAt == b.createdAt then
      return a.id < b.id
    end
    return format.later(a.createdAt, b.createdAt)
  end)
  return out
end

--- The record named `ref` (id, name or id prefix), preferring `repo`.
function M.find(ref, repo)
  if not ref or ref == '' then
    return nil
  end
  if M.agents[ref] then
    return M.agents[ref]
  end
  local r = repo and M.realpath(repo)
  local by_name, any_name, prefix = nil, nil, {}
  for id, a in pairs(M.agents) do
    if a.name == ref then
      if r and M.realpath(a.repo) == r then
        by_name = a
      else
        any_name = a
      end
    elseif id:sub(1, #ref) == ref then
      prefix[#prefix + 1] = a
    end
  end
  return by_name or any_name or (#prefix == 1 and prefix[1] or nil)
end

--- Counts for the statusline over every known agent.
function M.counts()
  local c = { active = 0, needs_input = 0, succeeded = 0, failed = 0 }
  for _, a in pairs(M.agents) do
    if format.is_active(a.state) then
      c.active = c.active + 1
    elseif a.state == 'needs_input' then
      c.needs_input = c.needs_input + 1
    elseif a.state == 'succeeded' and not a.cleaned then
      c.succeeded = c.succeeded + 1
    elseif (a.state == 'failed' or a.state == 'lost') and not a.cleaned then
      c.failed = c.failed + 1
    end
  end
  return c
end

return M
