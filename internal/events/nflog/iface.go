package nflog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// ifaceTTL is how long a resolved interface name is trusted. Names change
// (udev renames, operators' scripts) and indexes of deleted links are not
// reused for a long time, so a short TTL bounds staleness at the cost of one
// RTM_GETLINK per interface and TTL.
const ifaceTTL = 30 * time.Second

// errNoName means RTM_GETLINK answered without an IFLA_IFNAME.
var errNoName = errors.New("link has no name")

// ifaceCache resolves interface indexes to names with RTM_GETLINK on an
// rtnetlink socket opened in the NFLOG socket's namespace. net.Interfaces
// would ask the namespace of the calling thread, which is the wrong one
// when Config.NetNS is set.
//
// It is used by the Run goroutine only and needs no lock.
type ifaceCache struct {
	conn  *netlink.Conn
	now   func() time.Time
	names map[uint32]ifaceEntry
}

type ifaceEntry struct {
	name    string
	err     error
	fetched time.Time
}

func newIfaceCache(netns int) (*ifaceCache, error) {
	conn, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: netns})
	if err != nil {
		return nil, fmt.Errorf("dial rtnetlink: %w", err)
	}
	return &ifaceCache{
		conn:  conn,
		now:   time.Now,
		names: make(map[uint32]ifaceEntry),
	}, nil
}

// name returns the name of interface index. Failures are cached like names,
// so an interface that vanished costs one query per TTL, not per packet.
func (c *ifaceCache) name(index uint32) (string, error) {
	now := c.now()
	if e, ok := c.names[index]; ok && now.Sub(e.fetched) < ifaceTTL {
		return e.name, e.err
	}
	name, err := c.query(index)
	c.names[index] = ifaceEntry{name: name, err: err, fetched: now}
	return name, err
}

// query asks the kernel for one link. The reply is a full RTM_NEWLINK (a
// few KiB with statistics), of which only IFLA_IFNAME is read.
func (c *ifaceCache) query(index uint32) (string, error) {
	// struct ifinfomsg { u8 family, pad; u16 type; s32 index;
	// u32 flags, change; }
	req := make([]byte, unix.SizeofIfInfomsg)
	binary.NativeEndian.PutUint32(req[4:8], index)
	msgs, err := c.conn.Execute(netlink.Message{
		Header: netlink.Header{
			Type:  unix.RTM_GETLINK,
			Flags: netlink.Request,
		},
		Data: req,
	})
	if err != nil {
		return "", fmt.Errorf("get link %d: %w", index, err)
	}

	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWLINK ||
			len(m.Data) < unix.SizeofIfInfomsg {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[unix.SizeofIfInfomsg:])
		if err != nil {
			return "", fmt.Errorf("get link %d: %w", index, err)
		}
		for ad.Next() {
			if ad.Type() == unix.IFLA_IFNAME {
				return ad.String(), nil
			}
		}
	}
	return "", fmt.Errorf("get link %d: %w", index, errNoName)
}

func (c *ifaceCache) close() error { return c.conn.Close() }
