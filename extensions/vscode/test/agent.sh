#!/bin/sh
# The scripted agent of the VS Code tests (vscode_test.go commits it into the
# test repositories as tools/agent.sh). The prompt is the last argument: the
# agent "script" (command provider) passes only the prompt; the agent
# "asker" runs it as Claude Code's binary, which gets Claude's options first
# (--allowedTools TOOLS in a follow-up that allows what was refused). The
# current directory is the agent's worktree. Words in the prompt steer it:
#   WAIT FILE  wait until FILE exists before doing anything else
#   ASK        (agent "asker") answer in Claude Code's stream-json that
#              writing ANSWER.md was refused: the agent stops in needs_input.
#              A follow-up that allows Write writes ANSWER.md.
#   DELETE     delete README.md
#   HOLD FILE  after changing files, wait until FILE exists before exiting
#              (the changes stay uncommitted in the worktree meanwhile)
#   FAIL       exit 1 at the end
#   LGTM       (in the reviewed agent's task) the reviewer approves
# It fixes add() in calc.go when it still subtracts, appends the task's first
# line to NOTES.md and says what it did.
# As a reviewer (agent "asker", whose prompt the daemon writes: "You are
# reviewing a change…") it changes nothing and answers in Claude Code's
# stream-json with the verdict the daemon asks for: changes requested, with
# findings on calc.go:5 and NOTES.md:1 (approved, without findings, when the
# reviewed task says LGTM). As an integration ("Integrate the work of …") it
# first removes the conflict markers the daemon's merges left.
prompt=
allowed=
prev=
for arg in "$@"; do
	[ "$prev" = "--allowedTools" ] && allowed=$arg
	prev=$arg
	prompt=$arg
done
task=$(printf '%s\n' "$prompt" | head -n 1)
echo "working on: $task"
case $task in
"You are reviewing a change"*)
	echo '{"type":"system","subtype":"init","session_id":"review-session","model":"test-model"}'
	case $prompt in
	*LGTM*)
		printf '%s\n' '{"type":"result","subtype":"success","is_error":false,"num_turns":1,"session_id":"review-session","result":"Looks right.\n```json\n{\"verdict\":\"approve\",\"summary\":\"add adds now\",\"findings\":[]}\n```"}'
		;;
	*)
		printf '%s\n' '{"type":"result","subtype":"success","is_error":false,"num_turns":1,"session_id":"review-session","result":"Mostly right.\n```json\n{\"verdict\":\"request_changes\",\"summary\":\"add adds now, but nothing tests it\",\"findings\":[{\"file\":\"calc.go\",\"line\":5,\"severity\":\"medium\",\"message\":\"add has no test\"},{\"file\":\"NOTES.md\",\"line\":1,\"severity\":\"low\",\"message\":\"NOTES.md only repeats the task\"}]}\n```"}'
		;;
	esac
	exit 0
	;;
"Integrate the work of"*)
	for f in $(git grep -l '^<<<<<<< ' 2>/dev/null); do
		sed -i '/^<<<<<<< /d; /^=======$/d; /^>>>>>>> /d' "$f"
		echo "resolved the conflict in $f"
	done
	;;
esac
gate=$(printf '%s\n' "$task" | sed -n 's/.*WAIT \([^ ]*\).*/\1/p')
if [ -n "$gate" ]; then
	echo "waiting for $gate"
	while [ ! -e "$gate" ]; do sleep 0.1; done
fi
case $task in
*ASK*)
	echo '{"type":"system","subtype":"init","session_id":"asker-session","model":"test-model"}'
	echo '{"type":"result","subtype":"success","is_error":false,"num_turns":1,"result":"I need to write ANSWER.md.","session_id":"asker-session","permission_denials":[{"tool_name":"Write","tool_use_id":"w1","tool_input":{"file_path":"ANSWER.md","content":"yes"}}]}'
	exit 0
	;;
esac
if [ -n "$allowed" ]; then
	echo "allowed tools: $allowed"
	printf '%s\n' "$task" >ANSWER.md
	echo "wrote ANSWER.md"
fi
if [ -f calc.go ] && grep -q 'return a - b' calc.go; then
	sed -i 's/return a - b/return a + b/' calc.go
	echo "fixed add in calc.go"
fi
printf '%s\n' "$task" >>NOTES.md
echo "wrote NOTES.md"
case $task in
*DELETE*)
	rm -f README.md
	echo "deleted README.md"
	;;
esac
hold=$(printf '%s\n' "$task" | sed -n 's/.*HOLD \([^ ]*\).*/\1/p')
if [ -n "$hold" ]; then
	echo "holding until $hold"
	while [ ! -e "$hold" ]; do sleep 0.1; done
fi
case $task in
*FAIL*)
	echo "giving up" >&2
	exit 1
	;;
esac
echo "done"
