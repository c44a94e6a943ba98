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
