package nflog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Kernel ABI from include/uapi/linux/netfilter/nfnetlink_log.h. The names in
// the comments are the C names.
const (
	msgPacket = 0 // NFULNL_MSG_PACKET: kernel to user, one logged packet
	msgConfig = 1 // NFULNL_MSG_CONFIG: user to kernel

	// enum nfulnl_attr_type
	attrPacketHdr = 1  // NFULA_PACKET_HDR: struct nfulnl_msg_packet_hdr
	attrTimestamp = 3  // NFULA_TIMESTAMP: struct nfulnl_msg_packet_timestamp
	attrInDev     = 4  // NFULA_IFINDEX_INDEV: __be32
	attrOutDev    = 5  // NFULA_IFINDEX_OUTDEV: __be32
	attrPayload   = 9  // NFULA_PAYLOAD: the packet from the network header
	attrPrefix    = 10 // NFULA_PREFIX: NUL-terminated string
	attrSeq       = 12 // NFULA_SEQ: __be32, per-instance sequence

	// enum nfulnl_attr_config
	cfgCmd     = 1 // NFULA_CFG_CMD: struct nfulnl_msg_config_cmd
	cfgMode    = 2 // NFULA_CFG_MODE: struct nfulnl_msg_config_mode
	cfgTimeout = 4 // NFULA_CFG_TIMEOUT: __be32, in 1/100 s
	cfgQThresh = 5 // NFULA_CFG_QTHRESH: __be32, messages per batch
	cfgFlags   = 6 // NFULA_CFG_FLAGS: __be16

	cmdBind    = 1    // NFULNL_CFG_CMD_BIND
	copyPacket = 0x02 // NFULNL_COPY_PACKET
	flagSeq    = 0x01 // NFULNL_CFG_F_SEQ: add NFULA_SEQ to each message

	// nfgenmsg families other than IPv4 and IPv6 that NFLOG reports.
	nfprotoNetdev = unix.NFPROTO_NETDEV
	nfprotoBridge = unix.NFPROTO_BRIDGE

	nfgenHeader = 4 // struct nfgenmsg: family, version, res_id
)

// errMessage is wrapped by every error parseRecord returns.
var errMessage = errors.New("malformed NFLOG message")

// record is one NFLOG packet message, decoded from its attributes. Only the
// attributes ctwatch uses are kept.
type record struct {
	// family is the nfgenmsg family mapped to what DecodePacket takes.
	family Family
	group  uint16
	// hook is the netfilter hook (NF_INET_*). Note: go-nflog v2.1.0 reads
	// the padding byte after it instead, so its Hook is always 0.
	hook    uint8
	hasTime bool
	time    time.Time
	inDev   uint32
	outDev  uint32
	prefix  string
	payload []byte
	hasSeq  bool
	seq     uint32
}

// parseRecord decodes the body of an NFLOG packet message (nfgenmsg and
// attributes). The AttributeDecoder copies each attribute, so the record
// does not alias data.
func parseRecord(data []byte) (record, error) {
	var r record
	if len(data) < nfgenHeader {
		return r, fmt.Errorf("%w: %d bytes, no nfgenmsg", errMessage, len(data))
	}
	nfFamily := data[0]
	r.group = binary.BigEndian.Uint16(data[2:4])
	var hwProto uint16

	ad, err := netlink.NewAttributeDecoder(data[nfgenHeader:])
	if err != nil {
		return r, fmt.Errorf("%w: %w", errMessage, err)
	}
	ad.ByteOrder = binary.BigEndian
	for ad.Next() {
		switch ad.Type() {
		case attrPacketHdr:
			// struct nfulnl_msg_packet_hdr { __be16 hw_protocol;
			// __u8 hook; __u8 _pad; }
			ad.Do(func(b []byte) error {
				if len(b) < 4 {
					return fmt.Errorf("packet header: %d bytes", len(b))
				}
				hwProto = binary.BigEndian.Uint16(b[0:2])
				r.hook = b[2]
				return nil
			})
		case attrTimestamp:
			// struct nfulnl_msg_packet_timestamp { __aligned_be64 sec;
			// __aligned_be64 usec; }
			ad.Do(func(b []byte) error {
				if len(b) < 16 {
					return fmt.Errorf("timestamp: %d bytes", len(b))
				}
				sec := int64(binary.BigEndian.Uint64(b[0:8]))
				usec := int64(binary.BigEndian.Uint64(b[8:16]))
				r.time = time.Unix(sec, usec*int64(time.Microsecond))
				r.hasTime = true
				return nil
			})
		case attrInDev:
			r.inDev = ad.Uint32()
		case attrOutDev:
			r.outDev = ad.Uint32()
		case attrPayload:
			ad.Do(func(b []byte) error {
				r.payload = b
				return nil
			})
		case attrPrefix:
			r.prefix = ad.String() // trims the NUL
		case attrSeq:
			r.seq = ad.Uint32()
			r.hasSeq = true
		}
	}
	if err := ad.Err(); err != nil {
		return r, fmt.Errorf("%w: %w", errMessage, err)
	}

	r.family = messageFamily(nfFamily, hwProto)
	return r, nil
}

// messageFamily maps the nfgenmsg family to the family of the payload.
// Tables of the inet family report NFPROTO_IPV4 or NFPROTO_IPV6; bridge and
// netdev tables report their own family, and the EtherType in the packet
// header says what the payload is.
func messageFamily(nfFamily uint8, hwProto uint16) Family {
	switch nfFamily {
	case unix.NFPROTO_IPV4:
		return FamilyIPv4
	case unix.NFPROTO_IPV6:
		return FamilyIPv6
	case nfprotoBridge, nfprotoNetdev:
		switch hwProto {
		case unix.ETH_P_IP:
			return FamilyIPv4
		case unix.ETH_P_IPV6:
			return FamilyIPv6
		}
		return FamilyUnspec
	}
	return Family(nfFamily)
}
