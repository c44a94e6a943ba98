-- The LSP clients: one `bgagents lsp` per git repository root (a main
-- checkout or an agent's worktree), attached to the buffers of files in
-- it. Custom notifications are handled by method name (protocol.lua);
-- requests go through client.request. A client that is still initializing
-- queues the requests made of it.
local compat = require('bgagents.compat')
local config = require('bgagents.config')
local protocol = require('bgagents.protocol')
local state = require('bgagents.state')

local M = {}

M.name = 'bgagents'

-- id -> { root, ready, queue }
local info = {}

-- root -> the id of its client, set as soon as the client is started (so a
-- client still initializing is reused: vim.lsp's client lists leave those
-- out on some versions), cleared when it exits.
M.roots = {}

--- The git repository that contains `path` (a file or directory): its root
--- (the folder holding .git) and its main checkout (the same, except in a
--- linked worktree, whose .git file points into the main checkout's
--- .git/worktrees/). Found without running git.
---@return string|nil root
---@return string|nil main
function M.repo_of(path)
  if not path or path == '' then
    return nil
  end
  local uv = compat.uv
  local dir = path
  local st = uv.fs_stat(dir)
  if not st or st.type ~= 'directory' then
    dir = vim.fn.fnamemodify(dir, ':h')
  end
  dir = vim.fn.fnamemodify(dir, ':p'):gsub('/$', '')
  while dir and dir ~= '' do
    local dotgit = dir .. '/.git'
    local s = uv.fs_stat(dotgit)
    if s then
      local main = dir
      if s.type == 'file' then
        local f = io.open(dotgit, 'r')
        local line = f and f:read('*l') or ''
        if f then
          f:close()
        end
        local gitdir = line:match('^gitdir:%s*(.-)%s*$')
        local m = gitdir and gitdir:match('^(/.*)/%.git/worktrees/[^/]+$')
        if m then
          main = m
        end
      end
      return dir, main
    end
    local parent = vim.fn.fnamemodify(dir, ':h')
    if parent == dir then
      break
    end
    dir = parent
  end
  return nil
end

--- The repository a command run now is about: the one of the list, diff or
--- log buffer it runs in, else of the current file, else of the cwd.
---@return string|nil root
---@return string|nil main
function M.current()
  local b = vim.b.bgagents_root
  if b then
    return b, vim.b.bgagents_main or b
  end
  local name = vim.api.nvim_buf_get_name(0)
  if name ~= '' and vim.bo.buftype == '' then
    local root, main = M.repo_of(name)
    if root then
      return root, main
    end
  end
  return M.repo_of(vim.fn.getcwd())
end

local function on_agent_changed(_, params)
  if params and params.agent then
    state.update(params.agent, true)
  end
end

local function on_output(_, params)
  if params then
    require('bgagents.ui').on_output(params)
  end
end

-- LSP handlers may run in a fast event on old versions: state changes
-- touch buffers and fire autocmds, so they run on the main loop.
local function main_loop(fn)
  return function(...)
    if vim.in_fast_event() then
      local args = { ... }
      local n = select('#', ...)
      vim.schedule(function()
        fn(unpack(args, 1, n))
      end)
    else
      fn(...)
    end
  end
end

local function client_config(root)
  local caps = vim.lsp.protocol.make_client_capabilities()
  caps.experimental = caps.experimental or {}
  caps.experimental.bgagents = { notifications = true }
  local cmd = vim.deepcopy(config.values.cmd)
  cmd[#cmd + 1] = 'lsp'
  local env = next(config.values.cmd_env) and config.values.cmd_env or nil
  return {
    name = M.name,
    cmd = cmd,
    cmd_env = env,
    root_dir = root,
    workspace_folders = { { uri = vim.uri_from_fname(root), name = root } },
    capabilities = caps,
    handlers = {
      [protocol.notifications.agentChanged] = main_loop(on_agent_changed),
      [protocol.notifications.output] = main_loop(on_output),
    },
    commands = {
      [protocol.send_to_agent_command] = function(command, ctx)
        require('bgagents.commands').send_code_action(command, ctx)
      end,
    },
    on_init = function(client)
      local i = info[client.id]
      if not i then
        return
      end
      i.ready = true
      local q = i.queue
      i.queue = {}
      for _, fn in ipairs(q) do
        fn(client)
      end
      -- Log buffers that followed an agent through a client that exited.
      if package.loaded['bgagents.ui'] then
        require('bgagents.ui').resume(root)
      end
      -- The initial snapshot of this repository's agents.
      compat.request(client, protocol.requests.list, { repo = root }, function(err, result)
        if not err and result then
          state.replace(result.agents, select(2, M.repo_of(root)))
        end
        M.snapshots[root] = true
      end)
    end,
    on_exit = main_loop(function(code, signal, id)
      local i = info[id]
      info[id] = nil
      if not i then
        return
      end
      if M.roots[i.root] == id then
        M.roots[i.root] = nil
        M.snapshots[i.root] = nil
      end
      if package.loaded['bgagents.ui'] then
        require('bgagents.ui').client_exited(i.root)
      end
      local why = string.format('`%s` exited (code %d%s)', table.concat(cmd, ' '), code or -1, (signal or 0) ~= 0 and (', signal ' .. signal) or '')
      for _, fn in ipairs(i.queue) do
        fn(nil, why)
      end
      local exiting = vim.v.exiting ~= nil and vim.v.exiting ~= vim.NIL
      if code ~= 0 and not i.stopping and not exiting then
        M.explain_exit(why, i.root)
      end
    end),
  }
end

--- Says why `bgagents lsp` failed: its stderr goes to the LSP log only, so
--- ask `bgagents doctor`, whose daemon line carries the reason and what to
--- do (another build running, an unusable socket directory, …).
local explained = {} -- root -> time of the last explanation
function M.explain_exit(why, root)
  local now = compat.uv.now()
  if explained[root] and now - explained[root] < 10000 then
    return
  end
  explained[root] = now
  local cmd = vim.deepcopy(config.values.cmd)
  vim.list_extend(cmd, { 'doctor', '--repo', root })
  compat.start(cmd, { env = config.values.cmd_env, timeout = 20000 }, function(r)
    local reason = r.stdout:match('\nFAIL daemon: ([^\n]*)') or r.stdout:match('^FAIL daemon: ([^\n]*)')
    vim.notify(
      string.format('bgagents: %s for %s%s', why, root, reason and (': ' .. reason) or '; see :checkhealth bgagents and :LspLog'),
      vim.log.levels.ERROR,
      { title = 'bgagents' }
    )
  end)
end

local function reuse_for(root)
  return function(c)
    return c.name == M.name and c.config.root_dir == root and info[c.id] ~= nil
  end
end

--- Attaches client `id` to the loaded file buffers of `root` that have no
--- bgagents client (after the previous client exited, e.g. on
--- `bgagents daemon --stop`).
local function attach_open_buffers(root, id)
  if not config.values.attach then
    return
  end
  local filter = config.values.should_attach
  for _, b in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(b) and vim.bo[b].buftype == '' then
      local name = vim.api.nvim_buf_get_name(b)
      if name ~= '' and not name:match('^%a[%w+.-]*://') and vim.fn.isdirectory(name) == 0 and M.repo_of(name) == root then
        if not filter or filter(b) then
          vim.lsp.buf_attach_client(b, id)
        end
      end
    end
  end
end

--- Starts (or finds) the client of `root`, attaching `bufnr` when given.
---@return integer|nil client id
---@return string|nil error
function M.start(root, bufnr)
  if vim.fn.executable(config.values.cmd[1]) ~= 1 then
    return nil,
      string.format(
        '%s is not executable: install bgagents (go build -o bin/bgagents ./cmd/bgagents) and put it on $PATH, or set cmd in setup{}',
        config.values.cmd[1]
      )
  end
  local known = M.roots[root]
  if known and info[known] and not info[known].stopping and vim.lsp.get_client_by_id(known) then
    if bufnr then
      vim.lsp.buf_attach_client(bufnr, known)
    end
    return known
  end
  local cfg = client_config(root)
  local reuse = reuse_for(root)
  -- on_init may run before lsp_start returns on some versions: register
  -- the client's info as soon as its id is known, from a wrapper.
  local on_init = cfg.on_init
  cfg.on_init = function(client, result)
    info[client.id] = info[client.id] or { root = root, ready = false, queue = {} }
    on_init(client, result)
  end
  local id, err = compat.lsp_start(cfg, bufnr, reuse)
  if not id then
    return nil, err
  end
  info[id] = info[id] or { root = root, ready = false, queue = {} }
  M.roots[root] = id
  attach_open_buffers(root, id)
  return id
end

--- Attaches the bgagents client of its repository to `bufnr` when it shows
--- a file inside a git repository.
function M.attach(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
  if not vim.api.nvim_buf_is_valid(bufnr) or vim.bo[bufnr].buftype ~= '' then
    return
  end
  local name = vim.api.nvim_buf_get_name(bufnr)
  if name == '' or name:match('^%a[%w+.-]*://') or vim.fn.isdirectory(name) == 1 then
    return
  end
  local root = M.repo_of(name)
  if not root then
    return
  end
  M.last_root = root
  local filter = config.values.should_attach
  if filter and not filter(bufnr) then
    return
  end
  local _, err = M.start(root, bufnr)
  if err and not M.warned then
    M.warned = true
    vim.notify('bgagents: ' .. err, vim.log.levels.WARN)
  end
end

--- Calls fn(client) once the client of `root` is initialized, or
--- fn(nil, error).
function M.with_client(root, fn)
  if not root then
    return fn(nil, 'not inside a git repository: open a file of one, or :cd into one')
  end
  M.last_root = root
  local id, err = M.start(root, nil)
  if not id then
    return fn(nil, err)
  end
  local client = vim.lsp.get_client_by_id(id)
  local i = info[id]
  if client and i and i.ready then
    return fn(client)
  end
  i.queue[#i.queue + 1] = fn
end

-- root -> true once the client's first bgagents/list has been applied.
M.snapshots = {}

--- Makes sure the agents of `root` are known, waiting at most `ms` for a
--- client to start and list them (for completion, which cannot wait for
--- a callback).
function M.snapshot(root, ms)
  if not root or M.snapshots[root] then
    return
  end
  if not M.start(root, nil) then
    return
  end
  vim.wait(ms or 2000, function()
    return M.snapshots[root] == true
  end, 10)
end

-- root -> { at = ms, result = AgentsResult }: bgagents/agents answers.
local agents_cache = {}

--- The agents the repository of `root` can run (bgagents/agents, cached
--- for 30 s); cb(err, result).
function M.agents(root, cb)
  local c = agents_cache[root]
  if c and compat.uv.now() - c.at < 30000 then
    return cb(nil, c.result)
  end
  M.request(root, protocol.requests.agents, { repo = root }, function(e, result)
    if not e and result then
      agents_cache[root] = { at = compat.uv.now(), result = result }
    end
    cb(e, result)
  end)
end

--- The bgagents/agents result of `root`, waiting at most `ms` (for
--- completion, which cannot wait for a callback); nil when none came.
function M.agents_sync(root, ms)
  if not root then
    return nil
  end
  local done, out = false, nil
  M.agents(root, function(e, result)
    done, out = true, (not e) and result or nil
  end)
  vim.wait(ms or 2000, function()
    return done
  end, 10)
  return out
end

--- Sends a request to the client of `root`; cb(err, result), err a string.
function M.request(root, method, params, cb)
  M.with_client(root, function(client, err)
    if not client then
      return cb(err)
    end
    local ok = compat.request(client, method, params, function(e, result)
      if e then
        return cb(M.message(e), nil, e)
      end
      cb(nil, result)
    end)
    if not ok then
      cb('the bgagents client for ' .. root .. ' has stopped')
    end
  end)
end

--- The daemon's error text, with CLI flags mapped to this plugin's commands.
function M.message(e)
  local msg = type(e) == 'table' and (e.message or vim.inspect(e)) or tostring(e)
  msg = msg:gsub('discard with %-%-force', 'discard with :BgAgents discard!')
  msg = msg:gsub('rm %-%-force', ':BgAgents discard!')
  msg = msg:gsub('run `?bgagents daemon %-%-stop`?', 'run `bgagents daemon --stop` (then :LspRestart, or restart Neovim)')
  for _, sub in ipairs({ 'push', 'review', 'pr', 'integrate', 'merge' }) do
    msg = msg:gsub('`bgagents ' .. sub .. ' ', '`:BgAgents ' .. sub .. ' ')
  end
  return msg
end

--- The running clients: { id, root, ready } each.
function M.list()
  local out = {}
  for id, i in pairs(info) do
    out[#out + 1] = { id = id, root = i.root, ready = i.ready }
  end
  table.sort(out, function(a, b)
    return a.root < b.root
  end)
  return out
end

--- Stops every bgagents client (agents keep running).
function M.stop_all()
  for id, i in pairs(info) do
    i.stopping = true
    vim.lsp.stop_client(id)
  end
end

return M
