package ssh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
)

// The app the driver tests deploy is this test binary run again with
// appFlag first: a small real HTTP server whose /health reports the release
// it serves. Reusing the binary avoids building anything during tests, and
// every "host" is this machine, so the path is valid on all of them.
const appFlag = "-shipbot-test-app"

// appLifetime ends a server the tests forgot; cleanup kills them sooner.
const appLifetime = 2 * time.Minute

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == appFlag {
		os.Exit(appMain(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// appMain modes:
//
//	serve SHARED            serve /health from the working directory (a release)
//	restart SHARED          stop the server whose pid is in SHARED/app.pid, start
//	                        a new one in the working directory, wait until it answers
//	check SHARED RELEASE    exit 0 if the server answers 200 "release=RELEASE"
//	deploy SPEC             run a Deploy as described in the JSON file SPEC: a
//	                        bot process that a test can kill -9
//
// SHARED/port holds the port the server listens on.
func appMain(args []string) int {
	if len(args) == 2 && args[0] == "deploy" {
		return appDeploy(args[1])
	}
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: serve|restart|check SHARED [RELEASE]")
		return 2
	}
	shared := args[1]
	port, err := os.ReadFile(filepath.Join(shared, "port"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	addr := "127.0.0.1:" + strings.TrimSpace(string(port))
	switch args[0] {
	case "serve":
		return appServe(addr)
	case "restart":
		return appRestart(addr, shared)
	case "check":
		if len(args) != 3 {
			return 2
		}
		body, status, err := appGet(addr)
		if err != nil {
			fmt.Println("health:", err)
			return 1
		}
		fmt.Printf("health: %d %s\n", status, body)
		if status != http.StatusOK || body != "release="+args[2] {
			return 1
		}
		return 0
	}
	return 2
}

func appServe(addr string) int {
	// On a loaded machine the killed server's port can take a moment to be
	// free; a real restart script would retry too.
	ln, err := net.Listen("tcp", addr)
	for deadline := time.Now().Add(5 * time.Second); err != nil && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond) // retry pacing
		ln, err = net.Listen("tcp", addr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	http.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {
		// Read at start-up and not per request, like an app server that
		// loaded its code: a switched symlink changes nothing until restart.
		w.Header().Set("Content-Type", "text/plain")
		if _, err := os.Stat("BROKEN"); err == nil {
			w.WriteHeader(http.StatusInternalServerError)
		}
		_, _ = io.WriteString(w, "release="+servedRelease)
	})
	wd, _ := os.Getwd()
	rel, err := os.ReadFile(filepath.Join(wd, "RELEASE"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	servedRelease = strings.TrimSpace(string(rel))
	time.AfterFunc(appLifetime, func() { os.Exit(0) })
	_ = http.Serve(ln, nil)
	return 0
}

var servedRelease string

func appRestart(addr, shared string) int {
	pidFile := filepath.Join(shared, "app.pid")
	if b, err := os.ReadFile(pidFile); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			stopPid(pid)
		}
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	logf, err := os.OpenFile(filepath.Join(shared, "app.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer logf.Close()
	cmd := exec.Command(self, appFlag, "serve", shared)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own session: the step's PTY hangup must not reach the server.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, _, err := appGet(addr); err == nil {
			fmt.Println("restarted, pid", cmd.Process.Pid)
			return 0
		}
		select {
		case <-exited:
			fmt.Println("server exited at start-up")
			return 1
		case <-time.After(20 * time.Millisecond):
		}
	}
	fmt.Println("server did not answer")
	return 1
}

// stopPid ends pid and waits until it is gone, so the port is free.
func stopPid(pid int) {
	if pid <= 0 || syscall.Kill(pid, syscall.SIGKILL) != nil {
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && alive(pid) {
		time.Sleep(10 * time.Millisecond)
	}
}

// alive reports whether pid runs. A killed process whose parent is gone
// may stay a zombie when PID 1 does not reap; it holds no port any more.
func alive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}

func appGet(addr string) (string, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/health", nil)
	if err != nil {
		return "", 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if err != nil {
		return "", 0, err
	}
	return string(b), resp.StatusCode, nil
}

// appRelease is what host's server reports, "" if it does not answer.
func appRelease(shared string) (string, error) {
	port, err := os.ReadFile(filepath.Join(shared, "port"))
	if err != nil {
		return "", err
	}
	body, status, err := appGet("127.0.0.1:" + strings.TrimSpace(string(port)))
	if err != nil {
		return "", err
	}
	if status != http.StatusOK {
		return "", errors.New("status " + strconv.Itoa(status) + ": " + body)
	}
	return strings.TrimPrefix(body, "release="), nil
}

// deploySpec is what a "deploy" process runs.
type deploySpec struct {
	Hosts             []HostConfigSpec
	User              string
	KeyFile           string
	KnownHosts        string
	Recipe            deploy.Recipe
	Release, Previous string
}

// HostConfigSpec is the JSON-able part of a HostConfig.
type HostConfigSpec struct{ Name, Addr, Base string }

func appDeploy(specFile string) int {
	b, err := os.ReadFile(specFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var spec deploySpec
	if err := json.Unmarshal(b, &spec); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	signer, err := LoadSigner(spec.KeyFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	hk, err := HostKeyCallback(spec.KnownHosts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var hosts []HostConfig
	for _, h := range spec.Hosts {
		hosts = append(hosts, HostConfig{Name: h.Name, Addr: h.Addr, BasePath: h.Base, User: spec.User, Signer: signer, HostKeys: hk})
	}
	res, err := New(spec.Recipe, hosts, 0, nil).Deploy(context.Background(),
		deploy.DeployRequest{App: spec.Recipe.App, Env: spec.Recipe.Env, Release: spec.Release, Previous: spec.Previous}, printProgress{})
	fmt.Printf("result %+v, error %v\n", res, err)
	if err != nil {
		return 1
	}
	return 0
}

type printProgress struct{}

func (printProgress) Step(name string, state deploy.StepState, detail string) {
	fmt.Println("step", name, state, detail)
}
func (printProgress) Output(line string) { fmt.Println(line) }
