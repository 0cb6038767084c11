package bench

import (
	"os"
	"os/exec"
	"slices"
	"testing"
)

// TestProcSampler reads this process and a child of it from /proc.
func TestProcSampler(t *testing.T) {
	child := exec.Command("sleep", "30")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()
	tree := processTree(os.Getpid())
	if tree[0] != os.Getpid() || !slices.Contains(tree, child.Process.Pid) {
		t.Errorf("tree %v: want this process first and the child %d", tree, child.Process.Pid)
	}
	p := &procSampler{pid: os.Getpid()}
	if _, _, err := p.sample(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 0, 1<<20)
	for i := range 100_000_000 { // some CPU to measure
		buf = append(buf[:0], byte(i))
	}
	rss, cores, err := p.sample()
	if err != nil {
		t.Fatal(err)
	}
	if rss < 1<<20 || cores <= 0 {
		t.Errorf("rss %d bytes, %.3f cores: want a few MB and some CPU", rss, cores)
	}
	if _, _, err := (&procSampler{pid: 1 << 30}).sample(); err == nil {
		t.Error("no error for a process that does not exist")
	}
}
