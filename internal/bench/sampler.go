package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// sampler takes one Sample a second until stopped.
type sampler struct {
	done chan struct{}
	wg   sync.WaitGroup
}

func (s *sampler) stop() {
	close(s.done)
	s.wg.Wait()
}

func (r *run) startSampler(res *Result) *sampler {
	s := &sampler{done: make(chan struct{})}
	var proc *procSampler
	if r.opts.ServerPID > 0 {
		proc = &procSampler{pid: r.opts.ServerPID}
		proc.sample() // the first CPU reading is the base of the next
		res.Server = &ServerUsage{PID: r.opts.ServerPID}
	}
	subs := int64(r.w.SubscriptionsPerTopic)
	if r.w.ConsumerPerSubscription == 0 {
		subs = 0
	}
	start := time.Now()
	s.wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		last, lastPub, lastCons := start, int64(0), int64(0)
		var cpuSum float64
		var cpuSamples int
		for {
			var now time.Time
			select {
			case <-s.done:
				// A last, shorter sample for the end of the run (all of a
				// run shorter than a second, however short).
				now = time.Now()
				if now.Sub(last) < 100*time.Millisecond && len(res.Series) > 0 {
					now = time.Time{}
				}
			case now = <-tick.C:
			}
			if !now.IsZero() {
				pub, cons := r.published.Load(), r.consumed.Load()
				dt := now.Sub(last).Seconds()
				sm := Sample{
					Second:      now.Sub(start).Seconds(),
					Warmup:      last.UnixNano() < r.measureFrom.Load(),
					PublishRate: float64(pub-lastPub) / dt,
					ConsumeRate: float64(cons-lastCons) / dt,
					Backlog:     max(pub*subs-cons, 0),
				}
				if p := r.pubLatency.takeInterval(); p != nil {
					sm.PublishP50, sm.PublishP99 = p.P50, p.P99
				}
				if p := r.e2eLatency.takeInterval(); p != nil {
					sm.E2EP50, sm.E2EP99 = p.P50, p.P99
				}
				if proc != nil {
					if rss, cpu, err := proc.sample(); err == nil {
						sm.RSSBytes, sm.CPUCores = rss, cpu
						res.Server.MaxRSSBytes = max(res.Server.MaxRSSBytes, rss)
						res.Server.MaxCPUCores = max(res.Server.MaxCPUCores, cpu)
						cpuSum += cpu
						cpuSamples++
					}
				}
				res.Series = append(res.Series, sm)
				last, lastPub, lastCons = now, pub, cons
			}
			select {
			case <-s.done:
				if res.Server != nil && cpuSamples > 0 {
					res.Server.AvgCPUCores = cpuSum / float64(cpuSamples)
				}
				return
			default:
			}
		}
	})
	return s
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's CPU times: 100 on
// every Linux platform Go supports.
const clockTicks = 100

// procSampler reads a process's resident memory and the CPU it used since
// the previous sample, from /proc.
type procSampler struct {
	pid      int
	lastCPU  float64 // seconds
	lastTime time.Time
}

// sample reads the process and its descendants (RabbitMQ's start script
// runs the Erlang VM as a child).
func (p *procSampler) sample() (rss int64, cores float64, err error) {
	var cpu float64
	for i, pid := range processTree(p.pid) {
		c, err1 := readProcCPU(pid)
		r, err2 := readProcRSS(pid)
		if err := errors.Join(err1, err2); err != nil {
			if i == 0 {
				return 0, 0, err
			}
			continue // a child that just exited
		}
		cpu += c
		rss += r
	}
	now := time.Now()
	if !p.lastTime.IsZero() {
		cores = (cpu - p.lastCPU) / now.Sub(p.lastTime).Seconds()
	}
	p.lastCPU, p.lastTime = cpu, now
	return rss, cores, nil
}

// processTree returns pid and its descendants, from the parent PIDs in
// /proc/*/stat.
func processTree(pid int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		if fields := statFields(data); len(fields) > 1 {
			if ppid, err := strconv.Atoi(fields[1]); err == nil {
				children[ppid] = append(children[ppid], child)
			}
		}
	}
	tree := []int{pid}
	for i := 0; i < len(tree); i++ {
		tree = append(tree, children[tree[i]]...)
	}
	return tree
}

// statFields returns the fields of /proc/PID/stat after the command name
// (which is in parentheses and may hold spaces): fields[0] is field 3,
// the state.
func statFields(data []byte) []string {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(data[i+1:]))
}

// readProcCPU returns the user and system CPU seconds of a process.
func readProcCPU(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	fields := statFields(data)
	// utime and stime are fields 14 and 15.
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, err1 := strconv.ParseFloat(fields[11], 64)
	stime, err2 := strconv.ParseFloat(fields[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad CPU times", pid)
	}
	return (utime + stime) / clockTicks, nil
}

// readProcRSS returns a process's resident set size in bytes.
func readProcRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/status: VmRSS %q", pid, rest)
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}
