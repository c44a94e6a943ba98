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

local verdict_words = {
  approve = 'approved',
  request_changes = 'changes requested',
  comment = 'commented',
}

--- "approved", "changes requested", "commented" (or the verdict itself).
function M.verdict_text(verdict)
  return verdict_words[verdict] or tostring(verdict or ''):gsub('_', ' ')
end

local function plural(n, word)
  return string.format('%d %s%s', n, word, n == 1 and '' or 's')
end
M.plural = plural

--- true when a review has ended: it has a verdict or says why it has none.
function M.review_ended(r)
  return type(r) == 'table' and ((r.verdict or '') ~= '' or (r.error or '') ~= '')
end

--- The latest review of `agent`, and the latest one that ended (either may be nil).
---@return bgagents.Review|nil latest
---@return bgagents.Review|nil ended
function M.latest_review(agent)
  local rs = type(agent) == 'table' and agent.reviews or nil
  if type(rs) ~= 'table' or #rs == 0 then
    return nil, nil
  end
  for i = #rs, 1, -1 do
    if M.review_ended(rs[i]) then
      return rs[#rs], rs[i]
    end
  end
  return rs[#rs], nil
end

--- What a name of a fan-out group is called: the variants' name without "-vN".
function M.group_label(agent)
  local name = agent.name or ''
  local stem = name:match('^(.-)%-v%d+$') or name:match('^(.-)%-v%d+%-%d+$')
  return (stem and stem ~= '') and stem or (agent.group or '?')
end

--- The agents in list order: as given (newest first), except that the
--- variants of a fan-out follow each other, by variant number, where the
--- first of them would be.
---@param agents bgagents.Agent[]
---@return bgagents.Agent[]
function M.grouped(agents)
  local groups = {}
  for _, a in ipairs(agents) do
    if a.group and a.group ~= '' then
      groups[a.group] = groups[a.group] or {}
      table.insert(groups[a.group], a)
    end
  end
  local out, done = {}, {}
  for _, a in ipairs(agents) do
    local g = a.group
    if not g or g == '' then
      out[#out + 1] = a
    elseif not done[g] then
      done[g] = true
      local members = groups[g]
      table.sort(members, function(x, y)
        if (x.variant or 0) == (y.variant or 0) then
          return x.id < y.id
        end
        return (x.variant or 0) < (y.variant or 0)
      end)
      vim.list_extend(out, members)
    end
  end
  return out
end

--- What the list says about an agent besides its columns: its fan-out
--- group, pipeline step, review, conflicts, push and pull request. Each
--- part is { text, kind } (kind names its highlight: "variant", "after",
--- "approve", "request_changes", "comment", "reviewing", "no_verdict",
--- "conflict", "pushed", …).
---@param a bgagents.Agent
---@param name_of? fun(id: string): string|nil the name of another agent
---@param group_size? table<string, integer> variants per group
---@return { [1]: string, [2]: string }[]
function M.notes(a, name_of, group_size)
  local function name(id)
    return (name_of and name_of(id)) or id
  end
  local parts = {}
  if a.group and a.group ~= '' then
    local n = group_size and group_size[a.group]
    parts[#parts + 1] = {
      string.format('v%d%s of %s', a.variant or 0, n and ('/' .. n) or '', M.group_label(a)),
      'variant',
    }
  end
  if a.after and a.after ~= '' then
    if a.state == 'queued' then
      parts[#parts + 1] = { 'waiting for ' .. name(a.after), 'after' }
    else
      parts[#parts + 1] = { 'after ' .. name(a.after), 'after' }
    end
  end
  if a.reviewOf and a.reviewOf ~= '' then
    parts[#parts + 1] = { 'reviews ' .. name(a.reviewOf), 'reviewer' }
  end
  if type(a.integrates) == 'table' and #a.integrates > 0 then
    local names = {}
    for i, id in ipairs(a.integrates) do
      names[i] = name(id)
    end
    parts[#parts + 1] = { 'integrates ' .. table.concat(names, ', '), 'integrates' }
  end
  local latest = M.latest_review(a)
  if latest then
    if (latest.verdict or '') ~= '' then
      local sym = latest.verdict == 'approve' and '✓' or latest.verdict == 'request_changes' and '✗' or '•'
      local n = type(latest.findings) == 'table' and #latest.findings or 0
      parts[#parts + 1] = {
        string.format('%s %s%s', sym, M.verdict_text(latest.verdict), n > 0 and (' (' .. plural(n, 'finding') .. ')') or ''),
        latest.verdict,
      }
    elseif (latest.error or '') ~= '' then
      parts[#parts + 1] = { 'review: no verdict', 'no_verdict' }
    else
      parts[#parts + 1] = { 'reviewing…', 'reviewing' }
    end
  end
  for _, c in ipairs(type(a.conflicts) == 'table' and a.conflicts or {}) do
    local with = (c.name and c.name ~= '') and c.name or c.base or '?'
    parts[#parts + 1] = {
      string.format('⚠ conflicts with %s: %s', with, table.concat(type(c.files) == 'table' and c.files or {}, ', ')),
      'conflict',
    }
  end
  if a.pullRequest and a.pullRequest ~= '' then
    parts[#parts + 1] = { 'PR ' .. a.pullRequest, 'pull_request' }
  elseif type(a.pushed) == 'table' then
    parts[#parts + 1] = { 'pushed to ' .. (a.pushed.remote or '?'), 'pushed' }
  end
  return parts
end

local NOTES_SEP = '; '

--- The lines of the agent list: a header, then one line per agent. A
--- NOTES column (see M.notes) is added when some agent has notes.
---@param agents bgagents.Agent[] in list order (see M.grouped)
---@param now? number seconds since the epoch
---@param name_of? fun(id: string): string|nil
---@return string[] lines
---@return table[] marks per line: { { start byte, end byte, kind } }
function M.list_lines(agents, now, name_of)
  local group_size = {}
  for _, a in ipairs(agents) do
    if a.group and a.group ~= '' then
      group_size[a.group] = (group_size[a.group] or 0) + 1
    end
  end
  local notes, any = {}, false
  for i, a in ipairs(agents) do
    notes[i] = M.notes(a, name_of, group_size)
    any = any or #notes[i] > 0
  end
  local header = vim.deepcopy(M.list_columns)
  if any then
    header[#header + 1] = 'NOTES'
  end
  local rows = { header }
  for i, a in ipairs(agents) do
    local state = a.state
    if a.stalledSince then
      state = state .. '(stalled)'
    end
    local row = { state, a.name, a.branch, M.age(a.createdAt, now), M.diffstat(a.diff), M.cost(a.usage) }
    if any then
      local texts = {}
      for j, p in ipairs(notes[i]) do
        texts[j] = p[1]
      end
      row[#row + 1] = table.concat(texts, NOTES_SEP)
    end
    rows[#rows + 1] = row
  end
  local widths = {}
  for _, r in ipairs(rows) do
    for i, cell in ipairs(r) do
      widths[i] = math.max(widths[i] or 0, vim.fn.strdisplaywidth(tostring(cell)))
    end
  end
  local lines, marks = {}, {}
  for n, r in ipairs(rows) do
    local cells = {}
    for i, cell in ipairs(r) do
      cells[i] = i < #r and pad(cell, widths[i]) or tostring(cell)
    end
    lines[n] = table.concat(cells, '  ')
    marks[n] = {}
    if any and n > 1 then
      -- the NOTES cell is last: its parts start after the other cells
      local col = #lines[n] - #cells[#cells]
      for _, p in ipairs(notes[n - 1]) do
        marks[n][#marks[n] + 1] = { col, col + #p[1], p[2] }
        col = col + #p[1] + #NOTES_SEP
      end
    end
  end
  return lines, marks
end

--- The message of a review that ended, and its level.
---@param agent bgagents.Agent the reviewed agent
---@param r bgagents.Review
---@return string message
---@return integer level
function M.review_notification(agent, r)
  local levels = vim.log.levels
  local name = agent.name or agent.id
  if (r.verdict or '') == '' then
    return string.format('bgagents: the review of %s by %s gave no verdict: %s', name, r.name or r.id, r.error or ''),
      levels.WARN
  end
  local n = type(r.findings) == 'table' and #r.findings or 0
  return string.format(
    'bgagents: review of %s by %s: %s, %s%s%s',
    name,
    r.name or r.id,
    M.verdict_text(r.verdict),
    plural(n, 'finding'),
    (r.summary or '') ~= '' and (' — ' .. (r.summary:gsub('\n', ' '))) or '',
    n > 0 and (' (:BgAgents findings ' .. name .. ')') or ''
  ),
    r.verdict == 'request_changes' and levels.WARN or levels.INFO
end

--- The message of a conflict that appeared.
---@param agent bgagents.Agent
---@param c bgagents.Conflict
function M.conflict_notification(agent, c)
  local files = table.concat(type(c.files) == 'table' and c.files or {}, ', ')
  local name = agent.name or agent.id
  if c.name and c.name ~= '' then
    return string.format(
      'bgagents: %s conflicts with %s in %s — merging both needs a resolution (:BgAgents integrate %s %s)',
      name,
      c.name,
      files,
      name,
      c.name
    )
  end
  return string.format('bgagents: %s conflicts with %s in %s (%s moved on since it started)', name, c.base or '?', files, c.base or '?')
end

local severity_type = { high = 'E', medium = 'W', low = 'I' }

--- Quickfix items of a review's findings, files relative to `dir` (the
--- agent's worktree).
---@param r bgagents.Review
---@param dir string
---@return table[]
function M.findings_items(r, dir)
  local items = {}
  for _, f in ipairs(type(r.findings) == 'table' and r.findings or {}) do
    local item = {
      text = ((f.severity or '') ~= '' and ('[' .. f.severity .. '] ') or '') .. (f.message or ''):gsub('\n', ' '),
      type = severity_type[f.severity] or 'I',
    }
    if (f.file or '') ~= '' then
      item.filename = f.file:sub(1, 1) == '/' and f.file or (dir:gsub('/$', '') .. '/' .. f.file)
      item.lnum = (f.line or 0) > 0 and f.line or 1
      item.col = 1
    end
    items[#items + 1] = item
  end
  return items
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

-- One value at the start of `s` (no leading blanks): a "quoted" or
-- 'quoted' string (a quote inside is doubled: 'it''s'), or up to the next
-- blank. Returns the value and the rest, or nil and a message.
local function take_value(s)
  local q = s:sub(1, 1)
  if q == '"' or q == "'" then
    local out, i = {}, 2
    while i <= #s do
      local c = s:sub(i, i)
      if c == q then
        if s:sub(i + 1, i + 1) == q then
          out[#out + 1] = q
          i = i + 2
        else
          return table.concat(out), s:sub(i + 1)
        end
      else
        out[#out + 1] = c
        i = i + 1
      end
    end
    return nil, 'unterminated ' .. q
  end
  local v, tail = s:match('^(%S+)(.*)$')
  return v, tail or ''
end

local function known_flags(allowed)
  local names = {}
  for n in pairs(allowed) do
    names[#names + 1] = '--' .. n
  end
  table.sort(names)
  return table.concat(names, ', ')
end

-- Parses the flag at the start of `rest` ("--name", "--name value",
-- "--name=value"). Returns true and the rest when it is one (setting it in
-- `flags`), false when `rest` does not start with a flag, or nil and a
-- message.
local function take_flag(rest, allowed, flags)
  local flag, tail = rest:match('^%-%-(%w[%w-]*)(.*)$')
  if not flag then
    return false
  end
  local inline = false
  if tail:sub(1, 1) == '=' then
    inline, tail = true, tail:sub(2)
  elseif tail ~= '' and not tail:match('^%s') then
    return false
  end
  local kind = allowed[flag]
  if not kind then
    return nil, string.format('unknown flag --%s (known: %s)', flag, known_flags(allowed))
  end
  if kind == true then
    if inline then
      return nil, string.format('--%s takes no value', flag)
    end
    flags[flag] = true
    return true, tail
  end
  if not inline then
    tail = tail:gsub('^%s+', '')
  end
  local value, after = nil, nil
  if tail ~= '' then
    value, after = take_value(tail)
    if not value then
      return nil, string.format('--%s: %s', flag, after)
    end
  end
  if not value or value == '' then
    return nil, string.format('--%s needs a value', flag)
  end
  if kind == 'list' then
    flags[flag] = flags[flag] or {}
    table.insert(flags[flag], value)
  elseif kind == 'number' then
    local n = tonumber(value)
    if not n or n ~= math.floor(n) then
      return nil, string.format('--%s needs a whole number, not %q', flag, value)
    end
    flags[flag] = n
  else
    flags[flag] = value
  end
  return true, after
end

--- Parses the leading flags of spawn/merge: `--agent NAME`, `--agent=NAME`,
--- `--title "two words"`, then the rest as the text. Unknown flags are an
--- error.
---@param args string
---@param allowed table<string, string|boolean> flag -> "value", "number",
---  "list" (repeatable: a list of values) or true (boolean flag)
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
    local ok, tail = take_flag(rest, allowed, flags)
    if ok == nil then
      return nil, tail
    elseif not ok then
      break
    end
    rest = tail
  end
  return flags, (rest:gsub('^%s+', ''):gsub('%s+$', ''))
end

--- Parses flags and words in any order (`push NAME --remote up`): the
--- flags as parse_flags, the other words (quoted or not) in order. After
--- `--` everything is a word.
---@return table|nil flags
---@return string[]|string words, or the error
function M.parse_args(args, allowed)
  local flags, words = {}, {}
  local rest = args or ''
  local only_words = false
  while true do
    rest = rest:gsub('^%s+', '')
    if rest == '' then
      break
    end
    local ok, tail = false, nil
    if not only_words then
      if rest == '--' or rest:match('^%-%-%s') then
        only_words, ok, tail = true, true, rest:sub(3)
      else
        ok, tail = take_flag(rest, allowed, flags)
        if ok == nil then
          return nil, tail
        end
      end
    end
    if not ok then
      local w, after = take_value(rest)
      if not w then
        return nil, after
      end
      words[#words + 1] = w
      tail = after
    end
    rest = tail
  end
  return flags, words
end

return M
