#!/bin/sh
# git post-checkout hook of the UI test repository: holds the creation of an
# agent's worktree while GATES/progress.armed exists and GATES/progress does
# not, so the test can see the "preparing" progress notification. At most 30 s.
gates=${BGAGENTS_TEST_GATES:?}
[ -e "$gates/progress.armed" ] || exit 0
i=0
while [ ! -e "$gates/progress" ] && [ $i -lt 300 ]; do
	sleep 0.1
	i=$((i + 1))
done
exit 0
