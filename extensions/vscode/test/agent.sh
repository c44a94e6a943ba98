#!/bin/sh
# The scripted agent of the VS Code tests (vscode_test.go commits it into the
# test repositories as tools/agent.sh). $1 is the prompt; the current
# directory is the agent's worktree. Words in the prompt steer it:
#   WAIT FILE  wait until FILE exists before doing anything else
#   FAIL       exit 1 at the end
# It fixes add() in calc.go when it still subtracts, appends the task's first
# line to NOTES.md and says what it did.
prompt=$1
task=$(printf '%s\n' "$prompt" | head -n 1)
echo "working on: $task"
gate=$(printf '%s\n' "$task" | sed -n 's/.*WAIT \([^ ]*\).*/\1/p')
if [ -n "$gate" ]; then
	echo "waiting for $gate"
	while [ ! -e "$gate" ]; do sleep 0.1; done
fi
if [ -f calc.go ] && grep -q 'return a - b' calc.go; then
	sed -i 's/return a - b/return a + b/' calc.go
	echo "fixed add in calc.go"
fi
printf '%s\n' "$task" >>NOTES.md
echo "wrote NOTES.md"
case $task in
*FAIL*)
	echo "giving up" >&2
	exit 1
	;;
esac
echo "done"
