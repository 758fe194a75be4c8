package fanout

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
	sshdriver "github.com/shipbot/shipbot/internal/deploy/ssh"
	"github.com/shipbot/shipbot/internal/deploy/ssh/sshtest"
)

// base is where the app lives on every host. Each host's sshd runs in a
// mount namespace of its own with its own directory bound here, so the
// hosts share this machine's CPUs but not their files.
const base = "/srv/app"

// The app's steps, the same for every way of deploying.
const (
	buildScript = "sleep 0.5; echo built > BUILT\n"
	restartCmd  = "readlink " + base + "/current > " + base + "/shared/running"
	healthCmd   = "test -f " + base + "/current/BUILT"
)

// way is one way of deploying release id to the hosts of a cluster.
type way struct {
	name string
	run  func(b *testing.B, c *cluster, id, prev string) error
}

type cluster struct {
	*sshtest.Cluster
	dirs     []string // what each host sees at base
	artifact string
	ansible  string // dir with ansible.cfg, inventory, playbook; "" without Ansible
}

// BenchmarkFanout deploys the same release to 1, 5 and 20 real sshd hosts
// three ways and prints the wall times side by side: shipbot's SSH driver;
// the floor, one plain `ssh` session a host that streams the artifact and
// runs the same steps; and Ansible (forks = hosts, pipelining,
// ControlPersist) when ansible-playbook is installed. Run it with
//
//	go test ./bench/fanout -run '^$' -bench Fanout -benchtime 1x -timeout 30m
//
// FANOUT_ROUNDS (3) sets how many times each way runs per host count; the
// ways take turns so a busy moment of the machine is shared out.
// FANOUT_NO_ANSIBLE=1 leaves Ansible out. Needs root (mount namespaces).
func BenchmarkFanout(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: every host gets its own mount namespace")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		b.Skip("needs unshare(1)")
	}
	rounds := 3
	if v, err := strconv.Atoi(os.Getenv("FANOUT_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		b.Fatal(err)
	}
	artifact := makeArtifact(b)
	ways := []way{{"shipbot", shipbotWay}, {"floor", floorWay}}
	ansible, _ := exec.LookPath("ansible-playbook")
	if os.Getenv("FANOUT_NO_ANSIBLE") != "" {
		ansible = ""
	}
	if ansible != "" {
		ways = append(ways, way{"ansible", ansibleWay})
	} else {
		fmt.Println("no Ansible column (FANOUT_NO_ANSIBLE set, or not installed: apt-get install -y ansible-core)")
	}

	var report strings.Builder
	fmt.Fprintf(&report, "\n%-6s %-8s %-28s %s\n", "hosts", "way", "wall times (s)", "median")
	var ratios strings.Builder
	for _, n := range []int{1, 5, 20} {
		c := startCluster(b, n, artifact, ansible != "")
		times := map[string][]time.Duration{}
		prev := ""
		for r := range rounds {
			for k := range ways {
				w := ways[(k+r)%len(ways)]
				id := fmt.Sprintf("%s-%d", w.name, r)
				start := time.Now()
				if err := w.run(b, c, id, prev); err != nil {
					b.Fatalf("%s, %d hosts, round %d: %v", w.name, n, r+1, err)
				}
				times[w.name] = append(times[w.name], time.Since(start))
				c.check(b, id)
				prev = id
			}
		}
		med := map[string]time.Duration{}
		for _, w := range ways {
			ts := times[w.name]
			var parts []string
			for _, d := range ts {
				parts = append(parts, fmt.Sprintf("%.2f", d.Seconds()))
			}
			med[w.name] = median(ts)
			fmt.Fprintf(&report, "%-6d %-8s %-28s %.2f\n", n, w.name, strings.Join(parts, " "), med[w.name].Seconds())
		}
		fmt.Fprintf(&ratios, "%d hosts: shipbot/floor %.2f", n, ratio(med["shipbot"], med["floor"]))
		b.ReportMetric(ratio(med["shipbot"], med["floor"]), fmt.Sprintf("x-floor-%dhosts", n))
		if m, ok := med["ansible"]; ok {
			fmt.Fprintf(&ratios, ", shipbot/ansible %.2f", ratio(med["shipbot"], m))
			b.ReportMetric(ratio(med["shipbot"], m), fmt.Sprintf("x-ansible-%dhosts", n))
		}
		ratios.WriteString(" (medians)\n")
	}
	fmt.Print(report.String() + "\n" + ratios.String())
}

func median(ts []time.Duration) time.Duration {
	s := slices.Clone(ts)
	slices.Sort(s)
	return s[len(s)/2]
}

func ratio(a, b time.Duration) float64 { return float64(a) / float64(b) }

// makeArtifact writes a 2 MB .tar.gz (random bytes, so gzip keeps its size)
// holding build.sh.
func makeArtifact(b *testing.B) string {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	blob := make([]byte, 2<<20)
	if _, err := rand.Read(blob); err != nil {
		b.Fatal(err)
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{"build.sh", []byte(buildScript)}, {"static/blob.bin", blob}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data))}); err != nil {
			b.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			b.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		b.Fatal(err)
	}
	p := filepath.Join(b.TempDir(), "app.tar.gz")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	return p
}

// startCluster starts n sshd hosts, each seeing its own directory at base.
func startCluster(b *testing.B, n int, artifact string, ansible bool) *cluster {
	root := b.TempDir()
	c := &cluster{artifact: artifact}
	for i := range n {
		d := filepath.Join(root, fmt.Sprintf("h%d", i+1))
		if err := os.MkdirAll(filepath.Join(d, "shared"), 0o755); err != nil {
			b.Fatal(err)
		}
		c.dirs = append(c.dirs, d)
	}
	c.Cluster = sshtest.StartWith(b, n, sshtest.Options{
		// Ansible copies the artifact over SFTP.
		SSHDOptions: []string{"Subsystem=sftp internal-sftp"},
		Wrap: func(i int, sshd []string) []string {
			return append([]string{"unshare", "-m", "--propagation", "private", "sh", "-c",
				`mount --bind "$0" ` + base + ` && exec "$@"`, c.dirs[i]}, sshd...)
		},
	})
	if ansible {
		c.ansible = writeAnsible(b, c)
	}
	return c
}

// check fails unless every host's current is release id, built, restarted.
func (c *cluster) check(b *testing.B, id string) {
	for _, d := range c.dirs {
		link, err := os.Readlink(filepath.Join(d, "current"))
		if err != nil || link != "releases/"+id {
			b.Fatalf("%s: current -> %q (%v), want releases/%s", d, link, err, id)
		}
		if _, err := os.Stat(filepath.Join(d, "releases", id, "BUILT")); err != nil {
			b.Fatal(err)
		}
		running, err := os.ReadFile(filepath.Join(d, "shared", "running"))
		if err != nil || strings.TrimSpace(string(running)) != "releases/"+id {
			b.Fatalf("%s: restarted on %q (%v), want releases/%s", d, running, err, id)
		}
	}
}

func shipbotWay(b *testing.B, c *cluster, id, prev string) error {
	signer, err := sshdriver.LoadSigner(c.KeyFile)
	if err != nil {
		return err
	}
	hk, err := sshdriver.HostKeyCallback(c.KnownHosts)
	if err != nil {
		return err
	}
	var hosts []sshdriver.HostConfig
	for i, h := range c.Hosts {
		hosts = append(hosts, sshdriver.HostConfig{Name: fmt.Sprintf("h%d", i+1), Addr: h.Addr, User: c.User, Signer: signer, HostKeys: hk})
	}
	rc := deploy.Recipe{
		App: "app", Env: "bench", Path: base, KeepReleases: 5,
		Fetch:       deploy.Fetch{Artifact: c.artifact},
		Build:       []deploy.Command{{"sh", "build.sh"}},
		Restart:     []deploy.Command{{"sh", "-c", restartCmd}},
		StepTimeout: time.Minute,
		Health:      deploy.Health{Command: deploy.Command{"sh", "-c", healthCmd}, Retries: 1, Timeout: 10 * time.Second},
	}
	// parallel 0 = all hosts, as the config's default (up to 50) gives.
	res, err := sshdriver.New(rc, hosts, 0, nil).Deploy(context.Background(), deploy.DeployRequest{App: "app", Env: "bench", Release: id, Previous: prev}, nil)
	if err != nil {
		return err
	}
	if res.Release != id || res.RolledBack {
		return fmt.Errorf("result %+v", res)
	}
	return nil
}

// floorWay is the least any tool can do: one ssh session a host, all at
// once, the artifact streamed on stdin into tar, then the same steps.
func floorWay(b *testing.B, c *cluster, id, prev string) error {
	rel := base + "/releases/" + id
	remote := strings.Join([]string{
		"set -e", "mkdir -p " + rel, "cd " + rel, "tar -xzf -", "sh build.sh",
		"ln -sfn releases/" + id + " " + base + "/current.tmp", "mv -T " + base + "/current.tmp " + base + "/current",
		restartCmd, healthCmd,
	}, "; ")
	errs := make([]error, len(c.Hosts))
	var wg sync.WaitGroup
	for i, h := range c.Hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			host, port := splitAddr(h.Addr)
			cmd := exec.Command("ssh", append(sshArgs(c), "-p", port, c.User+"@"+host, remote)...)
			f, err := os.Open(c.artifact)
			if err != nil {
				errs[i] = err
				return
			}
			defer f.Close()
			cmd.Stdin = f
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("%s: %v: %s", h.Addr, err, out)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// sshArgs are the floor's ssh options: OpenSSH's defaults, plus
// FANOUT_SSH_OPTS (space-separated) to try others.
func sshArgs(c *cluster) []string {
	return append([]string{"-F", "/dev/null", "-i", c.KeyFile, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile=" + c.KnownHosts, "-o", "LogLevel=ERROR"}, strings.Fields(os.Getenv("FANOUT_SSH_OPTS"))...)
}

func splitAddr(addr string) (string, string) {
	i := strings.LastIndexByte(addr, ':')
	return addr[:i], addr[i+1:]
}

// writeAnsible writes an inventory of the hosts, an ansible.cfg as a team
// tuning Ansible for speed would (forks for every host, pipelining,
// ControlPersist) and the playbook of the same steps.
func writeAnsible(b *testing.B, c *cluster) string {
	dir := b.TempDir()
	var inv strings.Builder
	inv.WriteString("[app]\n")
	for i, h := range c.Hosts {
		host, port := splitAddr(h.Addr)
		fmt.Fprintf(&inv, "h%d ansible_host=%s ansible_port=%s\n", i+1, host, port)
	}
	fmt.Fprintf(&inv, "[app:vars]\nansible_user=%s\nansible_ssh_private_key_file=%s\nansible_python_interpreter=/usr/bin/python3\n", c.User, c.KeyFile)
	cfg := fmt.Sprintf(`[defaults]
inventory = %[1]s/inventory
forks = %[2]d
host_key_checking = True
retry_files_enabled = False
gathering = explicit
interpreter_python = /usr/bin/python3
[ssh_connection]
pipelining = True
ssh_args = -F /dev/null -o UserKnownHostsFile=%[3]s -o ControlMaster=auto -o ControlPersist=60s
control_path_dir = %[1]s/cp
`, dir, len(c.Hosts), c.KnownHosts)
	play := fmt.Sprintf(`- hosts: app
  gather_facts: false
  tasks:
    - name: release dir
      file: {path: "%[1]s/releases/{{ rel }}", state: directory}
    - name: fetch
      unarchive: {src: "%[2]s", dest: "%[1]s/releases/{{ rel }}"}
    - name: build
      command: {cmd: sh build.sh, chdir: "%[1]s/releases/{{ rel }}"}
    - name: switch
      shell: ln -sfn releases/{{ rel }} %[1]s/current.tmp && mv -T %[1]s/current.tmp %[1]s/current
    - name: restart
      shell: %[3]s
    - name: health
      shell: %[4]s
`, base, c.artifact, restartCmd, healthCmd)
	for name, data := range map[string]string{"inventory": inv.String(), "ansible.cfg": cfg, "site.yml": play} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

func ansibleWay(b *testing.B, c *cluster, id, prev string) error {
	cmd := exec.Command("ansible-playbook", "site.yml", "-e", "rel="+id)
	cmd.Dir = c.ansible
	cmd.Env = append(os.Environ(), "ANSIBLE_CONFIG="+filepath.Join(c.ansible, "ansible.cfg"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}
