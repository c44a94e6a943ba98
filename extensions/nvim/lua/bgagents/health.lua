-- :checkhealth bgagents. Each entry of `checks` is a section: a title and a
-- function returning findings { level, message, advice? }; check() only
-- reports them (vim.health on 0.9+, require('health') before).
local compat = require('bgagents.compat')

local M = {}

local function cfg()
  require('bgagents').ensure_setup()
  return require('bgagents.config').values
end

-- The repository to check: the current one, else the last one used (the
-- :checkhealth buffer itself is in none).
local function repo()
  local client = require('bgagents.client')
  local root, main = client.current()
  if not root and client.last_root then
    root, main = client.repo_of(client.last_root)
  end
  return root, main
end

local function repo_dir()
  return repo() or vim.fn.getcwd()
end

-- `bgagents doctor` runs once per :checkhealth; two sections read it.
local doctor_cache

local function doctor()
  if doctor_cache then
    return doctor_cache
  end
  local c = cfg()
  local cmd = vim.deepcopy(c.cmd)
  vim.list_extend(cmd, { 'doctor', '--repo', repo_dir() })
  doctor_cache = compat.run(cmd, { env = c.cmd_env, timeout = 30000 })
  doctor_cache.argv = table.concat(cmd, ' ')
  return doctor_cache
end

--- Doctor lines whose subject matches `want(subject)`, as findings.
local function doctor_findings(want)
  local r = doctor()
  local out = {}
  for _, line in ipairs(compat.split_lines(r.stdout)) do
    local mark, subject, detail = line:match('^(%S+)%s+([^:]+):%s*(.*)$')
    if mark and want(subject) then
      if mark == 'ok' then
        out[#out + 1] = { 'ok', subject .. ': ' .. detail }
      elseif mark == 'FAIL' then
        out[#out + 1] = { 'error', subject .. ': ' .. detail }
      else
        out[#out + 1] = { 'info', subject .. ': ' .. detail }
      end
    end
  end
  if #out == 0 then
    out[1] = {
      'error',
      string.format('`%s` printed nothing about this (exit %d): %s', r.argv, r.code, vim.trim(r.stderr)),
      { 'run it in a terminal to see why' },
    }
  end
  return out
end

local function version_at_least(v, major, minor)
  local a, b = v:match('(%d+)%.(%d+)')
  a, b = tonumber(a), tonumber(b)
  return a and (a > major or (a == major and b >= minor))
end

---@type { title: string, run: fun(): table[] }[]
M.checks = {
  {
    title = 'Neovim',
    run = function()
      local v = vim.version()
      local s = string.format('%d.%d.%d', v.major, v.minor, v.patch)
      local api = vim.lsp.start and 'vim.lsp.start' or 'vim.lsp.start_client'
      local sys = vim.system and 'vim.system' or 'jobstart'
      if vim.fn.has('nvim-0.7') ~= 1 then
        return { { 'error', 'Neovim ' .. s .. ' is too old', { 'bgagents needs Neovim 0.7 or newer' } } }
      end
      return { { 'ok', string.format('Neovim %s (LSP clients with %s, commands with %s)', s, api, sys) } }
    end,
  },
  {
    title = 'bgagents executable',
    run = function()
      local c = cfg()
      local exe = c.cmd[1]
      if vim.fn.executable(exe) ~= 1 then
        return {
          {
            'error',
            string.format('%s is not executable', exe),
            { 'build it: go build -o bin/bgagents ./cmd/bgagents, and put bin/ on $PATH', 'or set cmd = { "/path/to/bgagents" } in setup{}' },
          },
        }
      end
      local cmd = vim.deepcopy(c.cmd)
      cmd[#cmd + 1] = 'version'
      local r = compat.run(cmd, { env = c.cmd_env })
      if r.code ~= 0 then
        return { { 'error', string.format('`%s` failed (exit %d): %s', table.concat(cmd, ' '), r.code, vim.trim(r.stderr)) } }
      end
      local out = { { 'ok', string.format('%s: %s', vim.fn.exepath(exe), vim.trim(r.stdout)) } }
      local v = r.stdout:match('bgagents (%d+%.%d+%.%d+)')
      local mine = require('bgagents').version
      if v and v:match('^%d+%.%d+') ~= mine:match('^%d+%.%d+') then
        out[#out + 1] = { 'warn', string.format('bgagents is %s, this plugin was written for %s', v, mine), { 'use the plugin of the same release' } }
      end
      return out
    end,
  },
  {
    title = 'git',
    run = function()
      local r = compat.run({ 'git', '--version' })
      if r.code ~= 0 then
        return { { 'error', 'git is not installed', { 'install git 2.38 or newer' } } }
      end
      local v = r.stdout:match('(%d+%.%d+[%.%d]*)') or '?'
      if not version_at_least(v, 2, 38) then
        return { { 'warn', 'git ' .. v .. ' is older than 2.38: merge conflict checks need git merge-tree --write-tree', { 'install git 2.38 or newer' } } }
      end
      local out = { { 'ok', 'git ' .. v .. ' (worktrees, merge-tree --write-tree)' } }
      local root, main = repo()
      if root then
        out[#out + 1] = { 'ok', 'repository: ' .. root .. (main ~= root and (' (a worktree of ' .. main .. ')') or '') }
      else
        out[#out + 1] = { 'info', 'the current file and directory are not in a git repository' }
      end
      return out
    end,
  },
  {
    title = 'daemon (bgagents doctor)',
    run = function()
      if vim.fn.executable(cfg().cmd[1]) ~= 1 then
        return { { 'error', 'skipped: no bgagents executable' } }
      end
      return doctor_findings(function(s)
        return s == 'daemon' or s == 'config'
      end)
    end,
  },
  {
    title = 'agents (configured ones, then every supported CLI)',
    run = function()
      if vim.fn.executable(cfg().cmd[1]) ~= 1 then
        return { { 'error', 'skipped: no bgagents executable' } }
      end
      return doctor_findings(function(s)
        return s ~= 'daemon' and s ~= 'config' and s ~= 'repository' and s ~= 'git'
      end)
    end,
  },
  {
    title = 'landing (review, push, pr)',
    run = function()
      local out = {}
      local root = repo()
      if root then
        local r = compat.run({ 'git', '-C', root, 'remote' })
        local remotes = r.code == 0 and compat.split_lines(r.stdout) or {}
        if #remotes > 0 then
          out[#out + 1] = { 'ok', 'git remotes: ' .. table.concat(remotes, ', ') .. ' (push and pr use [push] remote, default origin)' }
        else
          out[#out + 1] = { 'info', 'the repository has no git remote: :BgAgents push and pr need one (git remote add origin URL)' }
        end
      end
      local gh = vim.fn.exepath('gh')
      if gh ~= '' then
        out[#out + 1] = { 'ok', 'GitHub CLI: ' .. gh .. ' (:BgAgents pr; `gh auth status` tells whether it is logged in)' }
      else
        out[#out + 1] = {
          'info',
          'the GitHub CLI (gh) is not on $PATH: :BgAgents pr needs it on the daemon\'s PATH (install it from https://cli.github.com, then `gh auth login`); push works without it',
        }
      end
      return out
    end,
  },
  {
    title = 'LSP clients',
    run = function()
      local client = require('bgagents.client')
      local out = {}
      for _, c in ipairs(client.list()) do
        out[#out + 1] = { 'ok', string.format('client %d for %s%s', c.id, c.root, c.ready and '' or ' (starting)') }
      end
      if #out == 0 then
        out[1] = {
          'info',
          'no bgagents client is running',
          cfg().attach and { 'one starts when you open a file inside a git repository' }
            or { 'attach = false: one starts on the first :BgAgents command' },
        }
      end
      for _, f in ipairs(compat.failures) do
        out[#out + 1] = { 'warn', 'recent command failure: ' .. f }
      end
      return out
    end,
  },
}

function M.check()
  doctor_cache = nil
  local h = compat.health()
  for _, check in ipairs(M.checks) do
    h.start(check.title)
    local ok, findings = pcall(check.run)
    if not ok then
      findings = { { 'error', 'the check failed: ' .. tostring(findings) } }
    end
    for _, f in ipairs(findings) do
      local report = h[f[1]] or h.info
      if f[3] and (f[1] == 'warn' or f[1] == 'error') then
        report(f[2], f[3])
      else
        report(f[2])
      end
    end
  end
end

return M
