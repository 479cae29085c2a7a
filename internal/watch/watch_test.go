package watch_test

import (
	"context"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/internal/correlate"
	"github.com/ctwatch/ctwatch/internal/events"
	"github.com/ctwatch/ctwatch/internal/lab"
	"github.com/ctwatch/ctwatch/internal/lab/labtest"
	"github.com/ctwatch/ctwatch/internal/netns"
	"github.com/ctwatch/ctwatch/internal/privtest"
	"github.com/ctwatch/ctwatch/internal/watch"
)

// TestIfaceFilter checks --iface: only drops that came in on the given
// interface are judged; the others are counted as ignored.
func TestIfaceFilter(t *testing.T) {
	privtest.RequireRoot(t)
	privtest.RequireCommand(t, "ip", "nft")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l := labtest.Start(t, lab.Config{NFLOGGroup: 9, UDPTimeout: time.Second})
	ns, err := netns.Open(l.Resolver().Path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()

	p, err := watch.New(watch.Config{
		NetNS: ns, NFLOGGroups: []uint16{9}, Iface: l.OutsideIface(), NoWarmUp: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	got := &watch.VerdictLog{}
	p.AddObserver(got)
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	<-p.Ready()

	// Three late answers arrive from the upstream side, five spoofs from
	// the outside.
	for i := 0; i < 3; i++ {
		if _, err := l.Query(ctx, lab.QuerySpec{Family: 4, Answers: []lab.Answer{{Delay: 1500 * time.Millisecond}}}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 5; i++ {
		if _, err := l.Spoof(ctx, lab.SpoofSpec{Family: 4}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond)
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	p.Close()

	if len(got.Verdicts()) != 5 {
		t.Errorf("%d verdicts, want 5 (the spoofs on %s)", len(got.Verdicts()), l.OutsideIface())
	}
	for _, v := range got.Verdicts() {
		if v.Drop.InIface != l.OutsideIface() || v.Class != correlate.Unsolicited {
			t.Errorf("verdict %s for a drop on %s", v.Class, v.Drop.InIface)
		}
	}
	if n := p.Ignored(events.SourceNFLOG); n != 3 {
		t.Errorf("ignored %d NFLOG drops, want 3 (the late answers on %s)", n, l.ResolverIface())
	}
}
