// Command testagent is the scripted agent the integration tests run. Its
// task (the last argument) is a script of steps separated by ";":
//
//	write PATH TEXT...   write TEXT to PATH (relative to the worktree)
//	append PATH TEXT...  append a line
//	say TEXT...          print TEXT on stdout
//	err TEXT...          print TEXT on stderr
//	json TEXT...         print TEXT (a JSON line) on stdout verbatim
//	lines N              print N numbered lines
//	ignoreterm           ignore SIGTERM from now on
//	fork PIDFILE         start a child that ignores SIGTERM and hangs; write its pid
//	pidfile PATH         write this process's pid to PATH
//	argv PATH            write this process's arguments, one a line, to PATH
//	printenv NAME...     print NAME=value for each variable
//	stamp PATH           write the current time (Unix nanoseconds) to PATH
//	waitfile PATH        block until PATH exists
//	hang                 block forever
//	exit N               exit with code N
//
// When TESTAGENT_SCRIPT is set, it is the script and the last argument is
// only the prompt (for runs whose prompt the daemon writes: reviewers,
// pipeline steps, integrations; "argv" records it).
//
// It is a real process with real signals: no part of it is mocked.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "--child" {
		signal.Ignore(syscall.SIGTERM)
		hang()
	}
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "testagent: no script")
		os.Exit(2)
	}
	// The script is the last argument, also when it is called as a vendor
	// CLI (provider = "claude", binary = testagent: every provider puts the
	// prompt last). It then prints the vendor's output format with json
	// steps: it replays captured output, it does not imitate the vendor.
	script := os.Args[len(os.Args)-1]
	// Where the daemon writes the prompt itself (reviewers, pipeline
	// steps), the test puts the script in the environment instead.
	if s := os.Getenv("TESTAGENT_SCRIPT"); s != "" {
		script = s
	}
	for _, step := range strings.Split(script, ";") {
		f := strings.Fields(step)
		if len(f) == 0 {
			continue
		}
		rest := strings.Join(f[1:], " ")
		switch f[0] {
		case "write":
			must(os.WriteFile(f[1], []byte(strings.Join(f[2:], " ")+"\n"), 0o644))
		case "append":
			fh, err := os.OpenFile(f[1], os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
			must(err)
			_, err = fmt.Fprintln(fh, strings.Join(f[2:], " "))
			must(err)
			must(fh.Close())
		case "say", "json":
			fmt.Println(rest)
		case "err":
			fmt.Fprintln(os.Stderr, rest)
		case "lines":
			n, _ := strconv.Atoi(rest)
			for i := 1; i <= n; i++ {
				fmt.Printf("line %d\n", i)
			}
		case "ignoreterm":
			signal.Ignore(syscall.SIGTERM)
		case "fork":
			cmd := exec.Command(os.Args[0], "--child")
			must(cmd.Start())
			must(writeAtomic(f[1], []byte(strconv.Itoa(cmd.Process.Pid))))
		case "stamp":
			must(writeAtomic(f[1], []byte(strconv.FormatInt(time.Now().UnixNano(), 10))))
		case "printenv":
			for _, k := range f[1:] {
				fmt.Printf("%s=%s\n", k, os.Getenv(k))
			}
		case "argv":
			must(writeAtomic(f[1], []byte(strings.Join(os.Args, "\n"))))
		case "pidfile":
			must(writeAtomic(f[1], []byte(strconv.Itoa(os.Getpid()))))
		case "waitfile":
			for {
				if _, err := os.Stat(f[1]); err == nil {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
		case "hang":
			hang()
		case "exit":
			n, _ := strconv.Atoi(rest)
			os.Exit(n)
		default:
			fmt.Fprintf(os.Stderr, "testagent: unknown step %q\n", f[0])
			os.Exit(2)
		}
	}
}

// hang blocks until the process is killed. (A bare select{} would be
// reported by the Go runtime as a deadlock.)
func hang() {
	for {
		time.Sleep(time.Hour)
	}
}

// writeAtomic writes a file the tests poll for: they see it whole or not
// at all.
func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "testagent:", err)
		os.Exit(3)
	}
}
