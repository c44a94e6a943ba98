-- Test helpers for specs run inside a real headless Neovim (see run.lua):
-- a poll helper with deadlines instead of sleeps, assertions, captured
-- vim.notify messages and scripted answers for vim.ui.input/select.
local H = {}

H.notes = {} -- { msg, level } of every vim.notify, oldest first

function H.log(fmt, ...)
  io.stdout:write(string.format(fmt, ...) .. '\n')
  io.stdout:flush()
end

vim.notify = function(msg, level)
  H.notes[#H.notes + 1] = { msg = tostring(msg), level = level or vim.log.levels.INFO }
  H.log('  notify[%d]: %s', level or vim.log.levels.INFO, tostring(msg))
end

-- ---- scripted vim.ui ---------------------------------------------------

H.inputs = {} -- queued answers of vim.ui.input (a string, or false for "cancelled")
H.selects = {} -- queued choosers of vim.ui.select: function(items, opts) -> item|nil
H.prompts = {} -- every prompt seen: { kind = "input"|"select", prompt, items }

vim.ui.input = function(opts, on_confirm)
  H.prompts[#H.prompts + 1] = { kind = 'input', prompt = opts and opts.prompt }
  local a = table.remove(H.inputs, 1)
  if a == nil then
    error('unexpected vim.ui.input: ' .. tostring(opts and opts.prompt))
  end
  on_confirm(a ~= false and a or nil)
end

vim.ui.select = function(items, opts, on_choice)
  H.prompts[#H.prompts + 1] = { kind = 'select', prompt = opts and opts.prompt, items = items, opts = opts }
  local chooser = table.remove(H.selects, 1)
  if chooser == nil then
    error('unexpected vim.ui.select: ' .. tostring(opts and opts.prompt))
  end
  local item = chooser(items, opts or {})
  local idx
  for i, it in ipairs(items) do
    if it == item then
      idx = i
    end
  end
  on_choice(item, idx)
end

--- A chooser picking the item whose formatted text contains `text`.
function H.pick(text)
  return function(items, opts)
    for _, it in ipairs(items) do
      local s = opts.format_item and opts.format_item(it) or tostring(it)
      if s:find(text, 1, true) then
        return it
      end
    end
    error(string.format('no item containing %q among %d', text, #items))
  end
end

-- ---- polling and assertions ----------------------------------------------

--- Polls cond() (errors count as false) every 20 ms until it returns a
--- true value, which it returns; fails after `ms` (default 20 s).
function H.wait(what, cond, ms)
  ms = ms or 20000
  local value, last_err
  local ok = vim.wait(ms, function()
    local ok, v = pcall(cond)
    if ok and v then
      value = v
      return true
    end
    if not ok then
      last_err = v
    end
    return false
  end, 20)
  if not ok then
    error(string.format('timed out after %d ms waiting for %s%s', ms, what, last_err and (' (last error: ' .. tostring(last_err) .. ')') or ''), 2)
  end
  return value
end

function H.eq(want, got, what)
  if not vim.deep_equal(want, got) then
    error(string.format('%s: want %s, got %s', what or 'value', vim.inspect(want), vim.inspect(got)), 2)
  end
end

function H.ok(v, what)
  if not v then
    error((what or 'assertion') .. ' failed', 2)
  end
  return v
end

function H.contains(s, sub, what)
  if type(s) ~= 'string' or not s:find(sub, 1, true) then
    error(string.format('%s: %s does not contain %q', what or 'text', vim.inspect(s), sub), 2)
  end
end

--- The first notification containing `text` after index `from`.
function H.note(text, from)
  for i = (from or 0) + 1, #H.notes do
    if H.notes[i].msg:find(text, 1, true) then
      return H.notes[i], i
    end
  end
end

function H.wait_note(text, from, ms)
  return H.wait('a notification containing ' .. string.format('%q', text), function()
    return H.note(text, from)
  end, ms)
end

--- The buffer named `name` (exactly), or nil.
function H.buf(name)
  for _, b in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_get_name(b) == name then
      return b
    end
  end
end

function H.lines(buf)
  return vim.api.nvim_buf_get_lines(buf, 0, -1, false)
end

--- The first line of `buf` matching the Lua pattern, or nil.
function H.line_matching(buf, pattern)
  for _, l in ipairs(H.lines(buf)) do
    if l:match(pattern) then
      return l
    end
  end
end

function H.realpath(p)
  return (vim.uv or vim.loop).fs_realpath(p) or p
end

--- The LSP clients attached to `buf`.
function H.buf_clients(buf)
  if vim.lsp.get_clients then
    return vim.lsp.get_clients({ bufnr = buf })
  end
  return vim.tbl_values(vim.lsp.buf_get_clients(buf))
end

-- ---- the runner --------------------------------------------------------

H.tests = {}

function H.test(name, fn)
  H.tests[#H.tests + 1] = { name = name, fn = fn }
end

--- Runs the tests in order (later ones may build on earlier ones), prints
--- one line per test and a summary, and exits Neovim: status 0 when all
--- passed, 1 otherwise. A failed test stops the run.
function H.run()
  local v = vim.version()
  H.log('# Neovim %d.%d.%d, %d tests', v.major, v.minor, v.patch, #H.tests)
  local passed, failed = 0, 0
  for _, t in ipairs(H.tests) do
    local start = (vim.uv or vim.loop).hrtime()
    H.inputs, H.selects = {}, {}
    local ok, e = xpcall(t.fn, debug.traceback)
    local ms = ((vim.uv or vim.loop).hrtime() - start) / 1e6
    if ok and (#H.inputs > 0 or #H.selects > 0) then
      ok, e = false, string.format('%d scripted answers were not used', #H.inputs + #H.selects)
    end
    if ok then
      passed = passed + 1
      H.log('ok - %s (%d ms)', t.name, ms)
    else
      failed = failed + 1
      H.log('not ok - %s (%d ms)\n%s', t.name, ms, e)
      break
    end
  end
  local skipped = #H.tests - passed - failed
  H.log('%d passed, %d failed%s', passed, failed, skipped > 0 and (', ' .. skipped .. ' not run') or '')
  if H.after then
    pcall(H.after)
  end
  vim.cmd(failed == 0 and 'qa!' or 'cquit 1')
end

return H
