package providers

// LimitsTurns reports whether the provider's CLI enforces a turn limit
// itself (Claude's --max-turns); for the others the daemon counts turns
// from the events and stops the agent.
func LimitsTurns(p Provider) bool {
	switch p.Name() {
	case "claude":
		return true
	}
	return false
}

// ReportsUsage reports whether the provider's CLI reports token usage, so
// budgets can be enforced (Copilot reports premium requests only; a plain
// command reports nothing).
func ReportsUsage(p Provider) bool {
	switch p.Name() {
	case "copilot", "command":
		return false
	}
	return true
}
