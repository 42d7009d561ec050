/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* net: TCP retransmits and resets, socket state changes, packet drops.
 * These fire in softirq context as often as not: the recording task is
 * whichever one the softirq ran in. */

#define RW_AF_INET 2
#define RW_AF_INET6 10

/* The socket fields every net record starts with (RW_SOCK_FIELDS). */
struct rw_sock_prefix {
	RW_SOCK_FIELDS
};

static __always_inline void rw_fill_sock(struct rw_sock_prefix *e, const struct sock *sk)
{
	e->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	e->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	e->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	e->state = BPF_CORE_READ(sk, __sk_common.skc_state);
	if (e->family == RW_AF_INET6) {
		BPF_CORE_READ_INTO(&e->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&e->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	} else {
		__u32 s = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr), d = BPF_CORE_READ(sk, __sk_common.skc_daddr);

		__builtin_memcpy(e->saddr, &s, 4);
		__builtin_memcpy(e->daddr, &d, 4);
	}
}

/* rw_fill_skb_reply fills addresses and ports from a received packet, as
 * seen by the reply to it (source and destination swapped), for resets
 * sent without a socket. */
static __always_inline void rw_fill_skb_reply(struct rw_sock_prefix *e, const struct sk_buff *skb)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header), th = BPF_CORE_READ(skb, transport_header);
	struct tcphdr tcp;
	__u8 version;

	if (bpf_probe_read_kernel(&version, 1, head + nh))
		return;
	if (version >> 4 == 4) {
		struct iphdr ip;

		if (bpf_probe_read_kernel(&ip, sizeof(ip), head + nh))
			return;
		e->family = RW_AF_INET;
		__builtin_memcpy(e->saddr, &ip.daddr, 4);
		__builtin_memcpy(e->daddr, &ip.saddr, 4);
	} else if (version >> 4 == 6) {
		struct ipv6hdr ip6;

		if (bpf_probe_read_kernel(&ip6, sizeof(ip6), head + nh))
			return;
		e->family = RW_AF_INET6;
		__builtin_memcpy(e->saddr, &ip6.daddr, 16);
		__builtin_memcpy(e->daddr, &ip6.saddr, 16);
	}
	if (bpf_probe_read_kernel(&tcp, sizeof(tcp), head + th))
		return;
	e->sport = bpf_ntohs(tcp.dest);
	e->dport = bpf_ntohs(tcp.source);
}

/* err came in 6.17 (before: 0). */
RW_TP(tcp_retransmit_skb)
int BPF_PROG(rw_tcp_retransmit_skb, const struct sock *sk, const struct sk_buff *skb)
{
	struct rw_ev_tcp_retransmit_skb *e;
	struct rw_draft d;

	if (!(e = rw_draft_current(&d, RW_EV_TCP_RETRANSMIT_SKB)))
		return 0;
	rw_fill_sock((void *)e, sk);
	if (rw_has_arg(RW_EV_TCP_RETRANSMIT_SKB, 2))
		e->err = (int)ctx[2];
	rw_emit(&d, RW_EV_TCP_RETRANSMIT_SKB, sizeof(*e));
	return 0;
}

/* reason came in 6.10 (before: 0, SK_RST_REASON_NOT_SPECIFIED). */
RW_TP(tcp_send_reset)
int BPF_PROG(rw_tcp_send_reset, const struct sock *sk, const struct sk_buff *skb)
{
	struct rw_ev_tcp_send_reset *e;
	struct rw_draft d;

	if (!(e = rw_draft_current(&d, RW_EV_TCP_SEND_RESET)))
		return 0;
	if (sk)
		rw_fill_sock((void *)e, sk);
	else if (skb)
		rw_fill_skb_reply((void *)e, skb);
	if (rw_has_arg(RW_EV_TCP_SEND_RESET, 2))
		e->reason = (enum sk_rst_reason)ctx[2];
	rw_emit(&d, RW_EV_TCP_SEND_RESET, sizeof(*e));
	return 0;
}

RW_TP(tcp_receive_reset)
int BPF_PROG(rw_tcp_receive_reset, struct sock *sk)
{
	struct rw_ev_tcp_receive_reset *e;
	struct rw_draft d;

	if (!(e = rw_draft_current(&d, RW_EV_TCP_RECEIVE_RESET)))
		return 0;
	rw_fill_sock((void *)e, sk);
	rw_emit(&d, RW_EV_TCP_RECEIVE_RESET, sizeof(*e));
	return 0;
}

RW_TP(inet_sock_set_state)
int BPF_PROG(rw_inet_sock_set_state, const struct sock *sk, const int oldstate, const int newstate)
{
	struct rw_ev_inet_sock_set_state *e;
	struct rw_draft d;

	if (!(e = rw_draft_current(&d, RW_EV_INET_SOCK_SET_STATE)))
		return 0;
	rw_fill_sock((void *)e, sk);
	e->oldstate = oldstate;
	e->newstate = newstate;
	e->protocol = BPF_CORE_READ(sk, sk_protocol);
	rw_emit(&d, RW_EV_INET_SOCK_SET_STATE, sizeof(*e));
	return 0;
}

/* reason came in 5.17 (before: 0, SKB_NOT_DROPPED_YET). */
RW_TP(kfree_skb)
int BPF_PROG(rw_kfree_skb, struct sk_buff *skb, void *location)
{
	struct rw_ev_kfree_skb *e;
	struct rw_rec r;

	if (!(e = rw_open_current(&r, RW_EV_KFREE_SKB)))
		return 0;
	e->location = (__u64)location;
	if (rw_has_arg(RW_EV_KFREE_SKB, 2))
		e->reason = (enum skb_drop_reason)ctx[2];
	e->protocol = bpf_ntohs(BPF_CORE_READ(skb, protocol));
	rw_end(&r);
	return 0;
}
