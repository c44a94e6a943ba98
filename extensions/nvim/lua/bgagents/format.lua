-- Pure functions that turn wire records into text: no Neovim state, so the
-- tests call them directly.
local M = {}

-- days_from_civil: days since 1970-01-01 of a proleptic Gregorian date
-- (Howard Hinnant's algorithm), so UTC times need no time zone.
local function days_from_civil(y, m, d)
  if m <= 2 then
    y = y - 1
  end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

--- Seconds since the epoch of an RFC 3339 time ("2026-11-21T16:00:06.928272996Z",
--- or with an offset), or nil.
---@return number|nil seconds
---@return integer|nil nanoseconds
function M.parse_time(s)
  if type(s) ~= 'string' then
    return nil
  end
  local y, mo, d, h, mi, sec, frac, zone = s:match('^(%d+)-(%d+)-(%d+)[Tt ](%d+):(%d+):(%d+)(%.?%d*)(.*)$')
  if not y then
    return nil
  end
  local offset = 0
  if zone ~= 'Z' and zone ~= 'z' then
    local sign, oh, om = zone:match('^([+-])(%d%d):?(%d%d)$')
    if not sign then
      return nil
    end
    offset = (tonumber(oh) * 3600 + tonumber(om) * 60) * (sign == '-' and -1 or 1)
  end
  local secs = days_from_civil(tonumber(y), tonumber(mo), tonumber(d)) * 86400
    + tonumber(h) * 3600
    + tonumber(mi) * 60
    + tonumber(sec)
    - offset
  local digits = frac:sub(2)
  local nanos = tonumber((digits .. '000000000'):sub(1, 9)) or 0
  return secs, nanos
end

--- true when time a is later than time b (RFC 3339 strings; a missing time is earliest).
function M.later(a, b)
  local sa, na = M.parse_time(a)
  local sb, nb = M.parse_time(b)
  if not sa then
    return false
  end
  if not sb then
    return true
  end
  if sa ~= sb then
    return sa > sb
  end
  return na > nb
end

--- "5s", "3m", "2h", "4d" between an RFC 3339 time and now (seconds since the epoch).
function M.age(t, now)
  local s = M.parse_time(t)
  if not s then
    return '-'
  end
  local d = math.max(0, math.floor((now or os.time()) - s))
  if d < 60 then
    return d .. 's'
  elseif d < 3600 then
    return math.floor(d / 60) .. 'm'
  elseif d < 86400 then
    return math.floor(d / 3600) .. 'h'
  end
  return math.floor(d / 86400) .. 'd'
end

--- "1f +2 -0", or "-" when nothing changed (as `bgagents ls`).
function M.diffstat(stat)
  if type(stat) ~= 'table' or ((stat.files or 0) == 0 and (stat.commits or 0) == 0) then
    return '-'
  end
  return string.format('%df +%d -%d', stat.files or 0, stat.additions or 0, stat.deletions or 0)
end

--- "$0.42", "~$0.42" when estimated, "-" when none.
function M.cost(usage)
  if type(usage) ~= 'table' or (usage.costUsd or 0) == 0 then
    return '-'
  end
  return string.format('%s$%.2f', usage.costEstimated and '~' or '', usage.costUsd)
end

local live = { queued = true, provisioning = true, running = true, needs_input = true }
local active = { queued = true, provisioning = true, running = true }

function M.is_live(state)
  return live[state] == true
end

function M.is_active(state)
  return active[state] == true
end

--- The message vim.notify shows when an agent reaches `agent.state`, and its level.
---@return string message
---@return integer level
function M.notification(agent)
  local name, state = agent.name or agent.id, agent.state
  local levels = vim.log.levels
  if state == 'succeeded' then
    local d = agent.diff or {}
    return string.format(
      'bgagents: %s finished (%d files, +%d −%d) on %s',
      name,
      d.files or 0,
      d.additions or 0,
      d.deletions or 0,
      agent.branch or '?'
    ),
      levels.INFO
  elseif state == 'failed' then
    return string.format('bgagents: %s failed: %s', name, agent.error ~= '' and agent.error or 'no reason given'),
      levels.ERROR
  elseif state == 'needs_input' then
    local q = agent.questions and agent.questions[1] and agent.questions[1].text
    local more = agent.questions and #agent.questions > 1 and string.format(' (and %d more)', #agent.questions - 1)
      or ''
    return string.format(
      'bgagents: %s needs input: %s%s — answer with :BgAgents msg %s …',
      name,
      q or (agent.error or ''):gsub('^needs input: ', ''),
      q and more or '',
      name
    ),
      levels.WARN
  elseif state == 'lost' then
    return string.format('bgagents: %s was lost: %s', name, agent.error or ''), levels.ERROR
  end
  return string.format('bgagents: %s is %s', name, state), levels.INFO
end

local function pad(s, n)
  s = tostring(s)
  local w = vim.fn.strdisplaywidth(s)
  if w >= n then
    return s
  end
  return s .. string.rep(' ', n - w)
end

M.list_columns = { 'STATE', 'NAME', 'BRANCH', 'AGE', 'DIFF', 'COST' }

--- The lines of the agent list: a header, then one line per agent.
---@param agents bgagents.Agent[] newest first
---@return string[] lines
function M.list_lines(agents, now)
  local rows = { M.list_columns }
  for _, a in ipairs(agents) do
    local state = a.state
    if a.stalledSince then
      state = state .. '(stalled)'
    end
    rows[#rows + 1] = { state, a.name, a.branch, M.age(a.createdAt, now), M.diffstat(a.diff), M.cost(a.usage) }
  end
  local widths = {}
  for _, r in ipairs(rows) do
    for i, cell in ipairs(r) do
      widths[i] = math.max(widths[i] or 0, vim.fn.strdisplaywidth(tostring(cell)))
    end
  end
  local lines = {}
  for _, r in ipairs(rows) do
    local cells = {}
    for i, cell in ipairs(r) do
      cells[i] = i < #r and pad(cell, widths[i]) or tostring(cell)
    end
    lines[#lines + 1] = table.concat(cells, '  ')
  end
  return lines
end

local function text_lines(prefix, text)
  local out = {}
  for _, l in ipairs(vim.split(text or '', '\n', { plain = true })) do
    out[#out + 1] = prefix .. l
  end
  return out
end

--- The log lines of one event (bgagents.Event).
---@return string[]
function M.event_lines(ev)
  local k = ev.kind
  if k == 'output' then
    return text_lines(ev.stream == 'stderr' and '[stderr] ' or '', ev.text)
  elseif k == 'state' then
    return { string.format('── %s%s', ev.state or '?', ev.text and ev.text ~= '' and (': ' .. ev.text) or '') }
  elseif k == 'session' then
    return { string.format('── session %s%s', ev.sessionId or '', ev.text and (' (' .. ev.text .. ')') or '') }
  elseif k == 'text' then
    return text_lines('', ev.text)
  elseif k == 'tool_call' then
    return { string.format('→ %s %s', ev.tool or '?', ev.path or ev.command or ev.text or '') }
  elseif k == 'tool_result' then
    return {
      string.format(
        '← %s %s%s',
        ev.tool or '?',
        ev.status or '',
        ev.text and ev.text ~= '' and (': ' .. ev.text:gsub('\n', ' ')) or ''
      ),
    }
  elseif k == 'usage' then
    local u = ev.usage or {}
    return { string.format('· tokens in %d out %d%s', u.inputTokens or 0, u.outputTokens or 0, (u.costUsd or 0) > 0 and string.format(' $%.4f', u.costUsd) or '') }
  elseif k == 'question' then
    return text_lines('? ', ev.text)
  elseif k == 'result' then
    local head = ev.isError and ('== error' .. (ev.errorKind and (' (' .. ev.errorKind .. ')') or '') .. ': ')
      or '== result: '
    return text_lines(head, ev.text)
  elseif k == 'raw' then
    return text_lines('', ev.raw or ev.text)
  elseif k == 'stall' then
    return { '… ' .. (ev.text or 'stalled') }
  elseif k == 'message' then
    return text_lines('> you: ', ev.text)
  end
  return { string.format('(%s) %s', tostring(k), ev.text or '') }
end

--- Parses the leading flags of spawn/merge: `--agent NAME`, `--agent=NAME`,
--- then the rest as the text. Unknown flags are an error.
---@param args string
---@param allowed table<string, string|boolean> flag -> "value" or true (boolean flag)
---@return table|nil flags
---@return string text or error
function M.parse_flags(args, allowed)
  local flags = {}
  local rest = args or ''
  while true do
    rest = rest:gsub('^%s+', '')
    if rest == '--' or rest:match('^%-%-%s') then
      rest = rest:sub(3) -- `--` ends the flags: the text may start with "--"
      break
    end
    local flag, tail = rest:match('^%-%-(%w[%w-]*)(.*)$')
    if not flag then
      break
    end
    local inline
    if tail:sub(1, 1) == '=' then
      inline, tail = tail:match('^=(%S*)(.*)$')
    elseif tail ~= '' and not tail:match('^%s') then
      break
    end
    local kind = allowed[flag]
    if not kind then
      local names = {}
      for n in pairs(allowed) do
        names[#names + 1] = '--' .. n
      end
      table.sort(names)
      return nil, string.format('unknown flag --%s (known: %s)', flag, table.concat(names, ', '))
    end
    if kind == true then
      flags[flag] = true
      rest = tail
    else
      local value = inline
      if not value then
        value, tail = tail:match('^%s+(%S+)(.*)$')
      end
      if not value or value == '' then
        return nil, string.format('--%s needs a value', flag)
      end
      flags[flag] = value
      rest = tail
    end
  end
  return flags, (rest:gsub('^%s+', ''):gsub('%s+$', ''))
end

return M
