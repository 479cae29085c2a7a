package lab

import (
	"net/netip"
	"testing"
)

func TestLayoutStaysInLabRanges(t *testing.T) {
	v4 := netip.MustParsePrefix("198.18.0.0/15")
	v6 := netip.MustParsePrefix("fd00::/8")
	o := owner{pid: 4194304, start: 1 << 40}
	seen := make(map[netip.Addr]int)
	for _, slot := range []int{0, 1, 2, slotCount - 2, slotCount - 1} {
		l := newLayout(o, slot)
		for _, name := range []string{l.r2u, l.u2r, l.r2o, l.o2r} {
			if len(name) > 15 {
				t.Errorf("slot %d: interface name %q is longer than IFNAMSIZ-1", slot, name)
			}
		}
		for family, fl := range map[int]*familyLayout{4: &l.v4, 6: &l.v6} {
			block := v4
			if family == 6 {
				block = v6
			}
			if !block.Contains(fl.block.Addr()) || fl.block.Bits() < block.Bits() {
				t.Errorf("slot %d: block %v is outside %v", slot, fl.block, block)
			}
			for _, a := range []netip.Addr{fl.resolverUp, fl.upstream, fl.resolverOut, fl.outside, fl.inner} {
				if !fl.block.Contains(a) {
					t.Errorf("slot %d: %v is outside the slot's block %v", slot, a, fl.block)
				}
				if other, dup := seen[a]; dup {
					t.Errorf("slot %d: %v also belongs to slot %d", slot, a, other)
				}
				seen[a] = slot
			}
		}
	}
}

func TestLabNetnsNames(t *testing.T) {
	o := owner{pid: 1234, start: 98765}
	l := newLayout(o, 42)
	for _, name := range []string{l.resolverNS, l.upstreamNS, l.outsideNS} {
		got, ok := parseLabNetns(name)
		if !ok || got != o {
			t.Errorf("parseLabNetns(%q) = %+v, %v; want %+v", name, got, ok, o)
		}
	}
	for _, name := range []string{"", "ctwlab-", "ctwlab-12-s1-res", "ctwlab-x.1-s1-res",
		"ctwlab-0.5-s1-res", "other-1.2-s3-res", "ctwlab-1.y-s1-res"} {
		if o, ok := parseLabNetns(name); ok {
			t.Errorf("parseLabNetns(%q) = %+v, want no match", name, o)
		}
	}
}

func TestProcessStart(t *testing.T) {
	o, err := selfOwner()
	if err != nil {
		t.Fatal(err)
	}
	if o.start == 0 || !ownerAlive(o) {
		t.Errorf("self %+v not alive", o)
	}
	if ownerAlive(owner{pid: o.pid, start: o.start + 1}) {
		t.Error("a different start time counts as alive")
	}
}
