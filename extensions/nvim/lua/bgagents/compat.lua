-- Everything that differs between Neovim 0.7 and current releases, found
-- by feature detection (never by comparing version numbers where a
-- function can be tested for): starting LSP clients, sending requests,
-- running external commands, :checkhealth reports, User autocmd data and
-- UTF-16 columns. Every external command the plugin runs goes through
-- M.run / M.start / M.detach, which pin the locale and log failures.
local M = {}

local uv = vim.uv or vim.loop
M.uv = uv

local has_011 = vim.fn.has('nvim-0.11') == 1

-- ---- LSP -------------------------------------------------------------

--- Active LSP clients (vim.lsp.get_clients on 0.10+, get_active_clients before).
function M.get_clients(filter)
  if vim.lsp.get_clients then
    return vim.lsp.get_clients(filter)
  end
  local clients = vim.lsp.get_active_clients()
  if filter and filter.name then
    clients = vim.tbl_filter(function(c)
      return c.name == filter.name
    end, clients)
  end
  return clients
end

--- Starts an LSP client, or reuses the one `reuse(client)` accepts, and
--- attaches `bufnr` to it when given. Returns the client id or nil, error.
---@param config table vim.lsp.ClientConfig
---@param bufnr integer|nil
---@param reuse fun(client: table): boolean
function M.lsp_start(config, bufnr, reuse)
  for _, c in ipairs(M.get_clients({ name = config.name })) do
    if reuse(c) then
      if bufnr then
        vim.lsp.buf_attach_client(bufnr, c.id)
      end
      return c.id
    end
  end
  local ok, id
  if bufnr and vim.lsp.start then
    -- 0.8+: starts (or reuses) and attaches in one call.
    ok, id = pcall(vim.lsp.start, config, {
      bufnr = bufnr,
      reuse_client = function(c)
        return reuse(c)
      end,
    })
  elseif has_011 then
    -- start_client is deprecated from 0.11 on; this is its replacement.
    ok, id = pcall(vim.lsp.start, config, { attach = false })
  else
    -- 0.7, or no buffer to attach yet (a command run from a scratch buffer).
    ok, id = pcall(vim.lsp.start_client, config)
    if ok and id and bufnr then
      vim.lsp.buf_attach_client(bufnr, id)
    end
  end
  if not ok then
    return nil, tostring(id)
  end
  if not id then
    return nil, 'could not start ' .. table.concat(config.cmd, ' ')
  end
  return id
end

--- client.request, which became a method (client:request) in 0.11.
function M.request(client, method, params, handler, bufnr)
  if has_011 then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

-- ---- External commands -------------------------------------------------

-- The last failures, newest last, shown by :checkhealth bgagents.
M.failures = {}

local function record_failure(cmd, what)
  table.insert(M.failures, string.format('%s: %s', table.concat(cmd, ' '), what))
  if #M.failures > 20 then
    table.remove(M.failures, 1)
  end
end

local function base_env(env)
  local e = { LC_ALL = 'C', LANG = 'C' }
  for k, v in pairs(env or {}) do
    e[k] = v
  end
  return e
end

local function split_lines(s)
  if s == nil or s == '' then
    return {}
  end
  s = s:gsub('\r\n', '\n'):gsub('\n$', '')
  return vim.split(s, '\n', { plain = true })
end
M.split_lines = split_lines

--- Runs `cmd` (argv) asynchronously; on_exit({code, stdout, stderr}) is
--- called on the main loop. opts: cwd, env (added to the environment),
--- timeout (ms). Returns a handle with :kill() and :wait(ms).
function M.start(cmd, opts, on_exit)
  opts = opts or {}
  local env = base_env(opts.env)
  local done, result = false, nil
  local function finish(code, out, err)
    if done then
      return
    end
    done = true
    result = { code = code, stdout = out or '', stderr = err or '' }
    if code ~= 0 then
      record_failure(cmd, string.format('exit %d: %s', code, (err or ''):gsub('%s+$', '')))
    end
    if on_exit then
      on_exit(result)
    end
  end
  local handle = {}
  if vim.system then
    local ok, obj = pcall(vim.system, cmd, {
      cwd = opts.cwd,
      env = env,
      text = true,
      stdin = false,
      timeout = opts.timeout,
    }, function(r)
      vim.schedule(function()
        finish(r.code ~= 0 and r.code or (r.signal ~= 0 and 128 + r.signal or 0), r.stdout, r.stderr)
      end)
    end)
    if not ok then
      finish(127, '', tostring(obj))
      return { wait = function() return result end, kill = function() end }
    end
    function handle.kill()
      obj:kill(15)
    end
  else
    local out, err = {}, {}
    local ok, job = pcall(vim.fn.jobstart, cmd, {
      cwd = opts.cwd,
      env = env,
      stdin = 'null',
      stdout_buffered = true,
      stderr_buffered = true,
      on_stdout = function(_, data)
        out = data
      end,
      on_stderr = function(_, data)
        err = data
      end,
      on_exit = function(_, code)
        finish(code, table.concat(out, '\n'), table.concat(err, '\n'))
      end,
    })
    if not ok or job <= 0 then
      finish(127, '', ok and (cmd[1] .. ' is not executable') or tostring(job))
      return { wait = function() return result end, kill = function() end }
    end
    if opts.timeout then
      vim.defer_fn(function()
        if not done then
          vim.fn.jobstop(job)
        end
      end, opts.timeout)
    end
    function handle.kill()
      vim.fn.jobstop(job)
    end
  end
  function handle.wait(_, ms)
    vim.wait(ms or opts.timeout or 10000, function()
      return done
    end, 10)
    if not done then
      handle.kill()
      finish(124, '', 'timed out')
    end
    return result
  end
  return handle
end

--- Runs `cmd` and waits for it (at most opts.timeout ms, default 10 s).
---@return {code: integer, stdout: string, stderr: string}
function M.run(cmd, opts)
  opts = opts or {}
  opts.timeout = opts.timeout or 10000
  local h = M.start(cmd, opts)
  return h:wait(opts.timeout)
end

--- Starts `cmd` detached (it outlives Neovim): `open.cmd`.
function M.detach(cmd, opts)
  opts = opts or {}
  local ok, err
  if vim.system then
    ok, err = pcall(vim.system, cmd, { cwd = opts.cwd, detach = true, stdin = false })
  else
    ok, err = pcall(vim.fn.jobstart, cmd, { cwd = opts.cwd, detach = true })
    if ok and err <= 0 then
      ok, err = false, cmd[1] .. ' is not executable'
    end
  end
  if not ok then
    record_failure(cmd, tostring(err))
    return false, tostring(err)
  end
  return true
end

-- ---- :checkhealth ------------------------------------------------------

--- The report functions of :checkhealth: vim.health (0.9+) or
--- require('health') (0.7, 0.8).
function M.health()
  local h = vim.health
  if h and h.start then
    return { start = h.start, ok = h.ok, warn = h.warn, error = h.error, info = h.info }
  end
  h = require('health')
  return {
    start = h.report_start,
    ok = h.report_ok,
    warn = h.report_warn,
    error = h.report_error,
    info = h.report_info,
  }
end

-- ---- Autocmds, text ----------------------------------------------------

local has_autocmd_data = vim.fn.has('nvim-0.8') == 1

--- Fires `User pattern`. The data reaches handlers as args.data on 0.8+;
--- on 0.7 it is in require('bgagents').event while they run.
function M.user_autocmd(pattern, data)
  if has_autocmd_data then
    vim.api.nvim_exec_autocmds('User', { pattern = pattern, modeline = false, data = data })
  else
    local bg = package.loaded['bgagents']
    if bg then
      bg.event = data
    end
    vim.api.nvim_exec_autocmds('User', { pattern = pattern, modeline = false })
  end
end

--- UTF-16 column of byte offset `byte` (0-based) in `line`.
function M.utf16_col(line, byte)
  byte = math.max(0, math.min(byte, #line))
  if has_011 then
    return vim.str_utfindex(line, 'utf-16', byte, false)
  end
  local _, u16 = vim.str_utfindex(line, byte)
  return u16
end

function M.islist(t)
  return (vim.islist or vim.tbl_islist)(t)
end

return M
