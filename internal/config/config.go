// Package config loads bgagents configuration: the user's
// ~/.config/bgagents/config.toml under the repository's .bgagents.toml.
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/bgagents/bgagents/agents/providers"
)

// RepoFile is the name of the per-repository configuration file.
const RepoFile = ".bgagents.toml"

// Duration is a time.Duration written as "90s" or "15m" in TOML.
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q (use e.g. \"30m\" or \"90s\")", string(b))
	}
	if v < 0 {
		return fmt.Errorf("duration %q is negative", string(b))
	}
	*d = Duration(v)
	return nil
}

// Defaults is the [defaults] table.
type Defaults struct {
	Agent            string   `toml:"agent"`
	Model            string   `toml:"model"`
	Base             string   `toml:"base"`
	MaxConcurrent    int      `toml:"max_concurrent"`
	Timeout          Duration `toml:"timeout"`
	CleanupUnchanged *bool    `toml:"cleanup_unchanged"`
	BudgetUSD        float64  `toml:"budget_usd"`
	BudgetTokens     int64    `toml:"budget_tokens"`
	MaxTurns         int      `toml:"max_turns"`
	StallTimeout     Duration `toml:"stall_timeout"`
}

// Price is what a model costs, in US dollars per million tokens: the
// [prices."MODEL"] table, used to estimate the cost of vendors that report
// tokens only.
type Price struct {
	Input      float64 `toml:"input"`
	Output     float64 `toml:"output"`
	CacheRead  float64 `toml:"cache_read"`
	CacheWrite float64 `toml:"cache_write"`
}

// Cost is the estimated cost of the given token counts.
func (p *Price) Cost(in, out, cacheRead, cacheWrite int64) float64 {
	return (float64(in)*p.Input + float64(out)*p.Output + float64(cacheRead)*p.CacheRead + float64(cacheWrite)*p.CacheWrite) / 1e6
}

// Agent is one [agents.NAME] table.
type Agent struct {
	Provider       string            `toml:"provider"`
	Command        []string          `toml:"command"`
	Binary         string            `toml:"binary"`
	Model          string            `toml:"model"`
	Args           []string          `toml:"args"`
	Env            map[string]string `toml:"env"`
	MaxTurns       int               `toml:"max_turns"`
	PermissionMode string            `toml:"permission_mode"`
}

// Worktree is the [worktree] table.
type Worktree struct {
	// Dir is where worktrees go; {repo} is the main checkout's base name.
	// Relative paths are relative to the main checkout.
	Dir string `toml:"dir"`
	// Copy lists gitignored paths copied from the main checkout into each
	// worktree (node_modules, .env, .venv).
	Copy []string `toml:"copy"`
	// Setup lists commands (argv, no shell) run in each new worktree.
	Setup [][]string `toml:"setup"`
	// Pool is how many provisioned worktrees are kept ready per repository.
	Pool int `toml:"pool"`
	// SetupTimeout bounds the setup commands of one worktree together
	// (default DefaultSetupTimeout).
	SetupTimeout Duration `toml:"setup_timeout"`
}

// DefaultSetupTimeout is how long the setup commands of one worktree may
// take together when [worktree] setup_timeout is not set.
const DefaultSetupTimeout = 10 * time.Minute

// SetupTimeout is [worktree] setup_timeout, or the default.
func (c *Config) SetupTimeout() time.Duration {
	if c.Worktree.SetupTimeout > 0 {
		return time.Duration(c.Worktree.SetupTimeout)
	}
	return DefaultSetupTimeout
}

// insideRepo reports whether the relative path p stays inside the
// repository once cleaned ("db/../x" does, "db/../../x" does not).
func insideRepo(p string) bool {
	if p == "" || filepath.IsAbs(p) {
		return false
	}
	c := filepath.Clean(p)
	return c != "." && c != ".." && !strings.HasPrefix(c, "../")
}

// Ports is the [ports] table.
type Ports struct {
	// Range is where agent port blocks come from, "4100-4999".
	Range string `toml:"range"`
	// PerAgent is the size of each agent's block (default 10).
	PerAgent int `toml:"per_agent"`
}

// Database is the [database] table.
type Database struct {
	// Kind is "postgres" or "sqlite".
	Kind string `toml:"kind"`
	// URL is the template database (postgres).
	URL string `toml:"url"`
	// Path is the database file relative to the repository (sqlite).
	Path string `toml:"path"`
}

// Review is the [review] table.
type Review struct {
	// Auto starts a review when an agent that changed something succeeds.
	Auto bool `toml:"auto"`
	// Agent reviews (a configured agent or vendor); default: the writer's.
	Agent string `toml:"agent"`
	// Model overrides the reviewer's model.
	Model string `toml:"model"`
}

// Push is the [push] table.
type Push struct {
	// Remote is where `bgagents push` and `bgagents pr` push (default
	// "origin").
	Remote string `toml:"remote"`
	// Draft opens pull requests as drafts.
	Draft bool `toml:"draft"`
}

// DefaultRemote is the remote pushed to when [push] remote is not set.
const DefaultRemote = "origin"

// PushRemote is [push] remote, or "origin".
func (c *Config) PushRemote() string {
	if c.Push.Remote != "" {
		return c.Push.Remote
	}
	return DefaultRemote
}

// Config is the merged configuration for one repository.
type Config struct {
	Defaults Defaults         `toml:"defaults"`
	Agents   map[string]Agent `toml:"agents"`
	Worktree Worktree         `toml:"worktree"`
	Prices   map[string]Price `toml:"prices"`
	Ports    Ports            `toml:"ports"`
	Database Database         `toml:"database"`
	Review   Review           `toml:"review"`
	Push     Push             `toml:"push"`

	// Files lists the files that were read, user file first.
	Files []string `toml:"-"`

	stallSet  bool
	agentFile map[string]string // which file defined each agent
}

// Default values used when config does not say.
const (
	DefaultAgent         = "claude"
	DefaultMaxConcurrent = 4
	DefaultWorktreeDir   = "../{repo}.worktrees"
	// DefaultStallTimeout is how long an agent may print nothing before it
	// is reported as stalled.
	DefaultStallTimeout = 10 * time.Minute
)

// DefaultPortsPerAgent is the size of an agent's port block.
const DefaultPortsPerAgent = 10

// PortsPerAgent is [ports] per_agent, or the default.
func (c *Config) PortsPerAgent() int {
	if c.Ports.PerAgent > 0 {
		return c.Ports.PerAgent
	}
	return DefaultPortsPerAgent
}

// ParsePortRange parses "LO-HI" (1024..65535).
func ParsePortRange(s string) (lo, hi int, err error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		return 0, 0, fmt.Errorf("%q must look like \"4100-4999\"", s)
	}
	if _, err := fmt.Sscanf(strings.TrimSpace(a), "%d", &lo); err != nil {
		return 0, 0, fmt.Errorf("%q must look like \"4100-4999\"", s)
	}
	if _, err := fmt.Sscanf(strings.TrimSpace(b), "%d", &hi); err != nil {
		return 0, 0, fmt.Errorf("%q must look like \"4100-4999\"", s)
	}
	if lo < 1024 || hi > 65535 || lo > hi {
		return 0, 0, fmt.Errorf("%q must lie within 1024-65535, low to high", s)
	}
	return lo, hi, nil
}

// StallTimeout is defaults.stall_timeout ("0s" turns stall reports off).
func (c *Config) StallTimeout() time.Duration {
	if c.stallSet {
		return time.Duration(c.Defaults.StallTimeout)
	}
	return DefaultStallTimeout
}

// PriceFor returns the price of model: an exact [prices] entry, else the
// longest entry that is a prefix of the model name; nil when unknown.
func (c *Config) PriceFor(model string) *Price {
	if p, ok := c.Prices[model]; ok {
		return &p
	}
	best := ""
	for k := range c.Prices {
		if strings.HasPrefix(model, k) && len(k) > len(best) {
			best = k
		}
	}
	if best == "" {
		return nil
	}
	p := c.Prices[best]
	return &p
}

// UserFile returns the path of the user's config file: $BGAGENTS_CONFIG,
// else $XDG_CONFIG_HOME/bgagents/config.toml, else
// ~/.config/bgagents/config.toml.
func UserFile() string {
	if p := os.Getenv("BGAGENTS_CONFIG"); p != "" {
		return p
	}
	if x := os.Getenv("XDG_CONFIG_HOME"); x != "" {
		return filepath.Join(x, "bgagents", "config.toml")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".config", "bgagents", "config.toml")
}

// Load reads the user's file and then repo's .bgagents.toml over it.
// Missing files are fine; unknown keys and bad values are errors that name
// the key and the file.
func Load(repo string) (*Config, error) {
	c := &Config{Agents: map[string]Agent{}, Prices: map[string]Price{}}
	for _, f := range []string{UserFile(), filepath.Join(repo, RepoFile)} {
		if f == "" {
			continue
		}
		if err := c.mergeFile(f); err != nil {
			return nil, err
		}
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) mergeFile(path string) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	var f Config
	md, err := toml.Decode(string(data), &f)
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return fmt.Errorf("config %s: unknown key %s", path, strings.Join(keys, ", "))
	}
	c.Files = append(c.Files, path)
	set := func(key string) bool { return md.IsDefined(strings.Split(key, ".")...) }
	if set("defaults.agent") {
		c.Defaults.Agent = f.Defaults.Agent
	}
	if set("defaults.model") {
		c.Defaults.Model = f.Defaults.Model
	}
	if set("defaults.base") {
		c.Defaults.Base = f.Defaults.Base
	}
	if set("defaults.max_concurrent") {
		if f.Defaults.MaxConcurrent < 1 {
			return fmt.Errorf("config %s: defaults.max_concurrent must be at least 1", path)
		}
		c.Defaults.MaxConcurrent = f.Defaults.MaxConcurrent
	}
	if set("defaults.timeout") {
		c.Defaults.Timeout = f.Defaults.Timeout
	}
	if set("defaults.cleanup_unchanged") {
		c.Defaults.CleanupUnchanged = f.Defaults.CleanupUnchanged
	}
	if set("defaults.budget_usd") {
		if f.Defaults.BudgetUSD < 0 {
			return fmt.Errorf("config %s: defaults.budget_usd must not be negative", path)
		}
		c.Defaults.BudgetUSD = f.Defaults.BudgetUSD
	}
	if set("defaults.budget_tokens") {
		if f.Defaults.BudgetTokens < 0 {
			return fmt.Errorf("config %s: defaults.budget_tokens must not be negative", path)
		}
		c.Defaults.BudgetTokens = f.Defaults.BudgetTokens
	}
	if set("defaults.max_turns") {
		if f.Defaults.MaxTurns < 0 {
			return fmt.Errorf("config %s: defaults.max_turns must not be negative", path)
		}
		c.Defaults.MaxTurns = f.Defaults.MaxTurns
	}
	if set("defaults.stall_timeout") {
		c.Defaults.StallTimeout = f.Defaults.StallTimeout
		c.stallSet = true
	}
	for model, p := range f.Prices {
		if p.Input < 0 || p.Output < 0 || p.CacheRead < 0 || p.CacheWrite < 0 {
			return fmt.Errorf("config %s: prices.%q must not be negative", path, model)
		}
		c.Prices[model] = p
	}
	if set("worktree.dir") {
		c.Worktree.Dir = f.Worktree.Dir
	}
	if set("worktree.copy") {
		for _, p := range f.Worktree.Copy {
			if p == "" || filepath.IsAbs(p) || p == ".." || strings.HasPrefix(p, "../") || strings.Contains(p, "/../") {
				return fmt.Errorf("config %s: worktree.copy: %q must be a path inside the repository", path, p)
			}
		}
		c.Worktree.Copy = f.Worktree.Copy
	}
	if set("worktree.setup") {
		for i, argv := range f.Worktree.Setup {
			if len(argv) == 0 || argv[0] == "" {
				return fmt.Errorf("config %s: worktree.setup[%d] is empty: each entry is a command and its arguments, e.g. [\"npm\", \"ci\"]", path, i)
			}
		}
		c.Worktree.Setup = f.Worktree.Setup
	}
	if set("worktree.pool") {
		if f.Worktree.Pool < 0 || f.Worktree.Pool > 16 {
			return fmt.Errorf("config %s: worktree.pool must be between 0 and 16", path)
		}
		c.Worktree.Pool = f.Worktree.Pool
	}
	if set("worktree.setup_timeout") {
		if f.Worktree.SetupTimeout == 0 {
			return fmt.Errorf("config %s: worktree.setup_timeout must be positive (e.g. \"20m\")", path)
		}
		c.Worktree.SetupTimeout = f.Worktree.SetupTimeout
	}
	if set("ports.range") {
		if _, _, err := ParsePortRange(f.Ports.Range); err != nil {
			return fmt.Errorf("config %s: ports.range: %w", path, err)
		}
		c.Ports.Range = f.Ports.Range
	}
	if set("ports.per_agent") {
		if f.Ports.PerAgent < 1 || f.Ports.PerAgent > 1000 {
			return fmt.Errorf("config %s: ports.per_agent must be between 1 and 1000", path)
		}
		c.Ports.PerAgent = f.Ports.PerAgent
	}
	if set("database") {
		switch f.Database.Kind {
		case "postgres":
			if f.Database.URL == "" {
				return fmt.Errorf("config %s: database.url is required for kind = \"postgres\" (the template database, e.g. \"postgres://localhost/app_dev\")", path)
			}
		case "sqlite":
			if f.Database.Path == "" {
				return fmt.Errorf("config %s: database.path is required for kind = \"sqlite\": the database file relative to the repository", path)
			}
			if !insideRepo(f.Database.Path) {
				return fmt.Errorf("config %s: database.path %q must be a file inside the repository, relative to it (e.g. \"db/dev.sqlite3\")", path, f.Database.Path)
			}
		default:
			return fmt.Errorf("config %s: database.kind must be \"postgres\" or \"sqlite\", not %q", path, f.Database.Kind)
		}
		c.Database = f.Database
	}
	if set("review.auto") {
		c.Review.Auto = f.Review.Auto
	}
	if set("review.agent") {
		if err := validName(f.Review.Agent); err != nil {
			return fmt.Errorf("config %s: review.agent: %w", path, err)
		}
		c.Review.Agent = f.Review.Agent
	}
	if set("review.model") {
		c.Review.Model = f.Review.Model
	}
	if set("push.remote") {
		if f.Push.Remote == "" || strings.HasPrefix(f.Push.Remote, "-") || strings.ContainsAny(f.Push.Remote, " \t\n") {
			return fmt.Errorf("config %s: push.remote %q is not a remote name (e.g. \"origin\")", path, f.Push.Remote)
		}
		c.Push.Remote = f.Push.Remote
	}
	if set("push.draft") {
		c.Push.Draft = f.Push.Draft
	}
	for name, a := range f.Agents {
		if err := validName(name); err != nil {
			return fmt.Errorf("config %s: agents.%s: %w", path, name, err)
		}
		if a.MaxTurns < 0 {
			return fmt.Errorf("config %s: agents.%s.max_turns must not be negative", path, name)
		}
		c.Agents[name] = a
		if c.agentFile == nil {
			c.agentFile = map[string]string{}
		}
		c.agentFile[name] = path
	}
	return nil
}

func validName(name string) error {
	if name == "" {
		return errors.New("empty agent name")
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return fmt.Errorf("agent name %q may only contain letters, digits, '-' and '_'", name)
		}
	}
	return nil
}

func (c *Config) validate() error {
	for name, a := range c.Agents {
		p := a.ProviderName(name)
		if _, err := providers.Get(p); err != nil {
			return fmt.Errorf("config %s: agents.%s: %w", c.agentFile[name], name, err)
		}
		if p == "command" && len(a.Command) == 0 {
			return fmt.Errorf("config %s: agents.%s: command must list the program and its arguments, e.g. command = [\"./agent.sh\", \"{prompt}\"]", c.agentFile[name], name)
		}
	}
	return nil
}

// ProviderName is the provider an [agents.NAME] table uses: `provider` when
// set, "command" when it has a command, else the table's own name (so
// [agents.claude] configures the claude provider).
func (a Agent) ProviderName(name string) string {
	switch {
	case a.Provider != "":
		return a.Provider
	case len(a.Command) > 0:
		return "command"
	default:
		return name
	}
}

// DefaultAgent is the agent used when a spawn names none.
func (c *Config) DefaultAgent() string {
	if c.Defaults.Agent != "" {
		return c.Defaults.Agent
	}
	return DefaultAgent
}

// MaxConcurrent is the limit of agents running at once for the repository.
func (c *Config) MaxConcurrent() int {
	if c.Defaults.MaxConcurrent > 0 {
		return c.Defaults.MaxConcurrent
	}
	return DefaultMaxConcurrent
}

// CleanupUnchanged reports whether an agent that changed nothing has its
// worktree and branch removed when it ends (default true).
func (c *Config) CleanupUnchanged() bool {
	return c.Defaults.CleanupUnchanged == nil || *c.Defaults.CleanupUnchanged
}

// WorktreeDir returns the absolute directory worktrees of repo go into.
func (c *Config) WorktreeDir(repo string) string {
	d := c.Worktree.Dir
	if d == "" {
		d = DefaultWorktreeDir
	}
	d = strings.ReplaceAll(d, "{repo}", filepath.Base(repo))
	if strings.HasPrefix(d, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			d = filepath.Join(home, d[2:])
		}
	}
	if !filepath.IsAbs(d) {
		d = filepath.Join(repo, d)
	}
	return filepath.Clean(d)
}

// Spec returns the provider spec for the agent named name. A name that is
// not configured but is a known provider ("claude") is that provider with
// its defaults.
func (c *Config) Spec(name string) (providers.Spec, error) {
	a, ok := c.Agents[name]
	if !ok {
		if _, err := providers.Get(name); err != nil || name == "command" {
			return providers.Spec{}, fmt.Errorf("unknown agent %q: configure it in %s as [agents.%s] (configured: %s)", name, RepoFile, name, strings.Join(c.AgentNames(), ", "))
		}
	}
	return providers.Spec{
		Name:           name,
		Provider:       a.ProviderName(name),
		Command:        a.Command,
		Binary:         a.Binary,
		Model:          a.Model,
		Args:           a.Args,
		Env:            a.Env,
		MaxTurns:       a.MaxTurns,
		PermissionMode: a.PermissionMode,
	}, nil
}

// AgentNames lists the configured agents, sorted; "none" when there are none.
func (c *Config) AgentNames() []string {
	var out []string
	for n := range c.Agents {
		out = append(out, n)
	}
	sort.Strings(out)
	if len(out) == 0 {
		return []string{"none"}
	}
	return out
}
