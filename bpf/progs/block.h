/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* block: requests inserted, issued, completed. */

#define RW_REQ_OP_MASK 0xff
#define RW_REQ_OP_READ 0
#define RW_REQ_OP_WRITE 1
#define RW_REQ_OP_FLUSH 2
#define RW_REQ_OP_DISCARD 3
#define RW_REQ_OP_SECURE_ERASE 5
#define RW_REQ_OP_DRV_IN 34
#define RW_REQ_OP_DRV_OUT 35

/* rw_req_flag is a request flag bit as the running kernel numbers it. */
#define rw_req_flag(name) (1U << bpf_core_enum_value(enum req_flag_bits, name))

/* rw_fill_rwbs mirrors blk_fill_rwbs() in kernel/trace/blktrace.c. */
static __always_inline void rw_fill_rwbs(char *rwbs, __u32 opf)
{
	__u32 i = 0;

#define RW_PUT(c)                  \
	do {                       \
		if (i < 7)         \
			rwbs[i++] = c; \
	} while (0)
	__builtin_memset(rwbs, 0, 8);
	if (opf & rw_req_flag(__REQ_PREFLUSH))
		RW_PUT('F');
	switch (opf & RW_REQ_OP_MASK) {
	case RW_REQ_OP_WRITE:
		RW_PUT('W');
		break;
	case RW_REQ_OP_DISCARD:
		RW_PUT('D');
		break;
	case RW_REQ_OP_SECURE_ERASE:
		RW_PUT('D');
		RW_PUT('E');
		break;
	case RW_REQ_OP_FLUSH:
		RW_PUT('F');
		break;
	case RW_REQ_OP_READ:
		RW_PUT('R');
		break;
	default:
		RW_PUT('N');
	}
	if (opf & rw_req_flag(__REQ_FUA))
		RW_PUT('F');
	if (opf & rw_req_flag(__REQ_RAHEAD))
		RW_PUT('A');
	if (opf & rw_req_flag(__REQ_SYNC))
		RW_PUT('S');
	if (opf & rw_req_flag(__REQ_META))
		RW_PUT('M');
	if (bpf_core_enum_value_exists(enum req_flag_bits, __REQ_ATOMIC) && (opf & rw_req_flag(__REQ_ATOMIC)))
		RW_PUT('U');
#undef RW_PUT
}

static __always_inline void rw_fill_rq(struct rw_ev_block_rq_insert *e, struct request *rq)
{
	__u32 opf = RW_R(rq, cmd_flags), op = opf & RW_REQ_OP_MASK;

	e->dev = rw_rq_dev(rq);
	e->sector = (op == RW_REQ_OP_DRV_IN || op == RW_REQ_OP_DRV_OUT) ? 0 : RW_R(rq, __sector);
	e->bytes = RW_R(rq, __data_len);
	e->rq = (__u64)rq;
	rw_fill_rwbs(e->rwbs, opf);
}

RW_TP(block_rq_insert)
int BPF_PROG(rw_block_rq_insert)
{
	struct rw_ev_block_rq_insert *e;
	struct rw_rec r;

	if (!(e = rw_open_current(&r, RW_EV_BLOCK_RQ_INSERT)))
		return 0;
	/* 5.10 passes (q, rq), 5.11 on (rq) */
	if (rw_has_arg(RW_EV_BLOCK_RQ_INSERT, 1))
		rw_fill_rq(e, (struct request *)ctx[1]);
	else
		rw_fill_rq(e, (struct request *)ctx[0]);
	rw_end(&r);
	return 0;
}

RW_TP(block_rq_issue)
int BPF_PROG(rw_block_rq_issue)
{
	struct rw_ev_block_rq_issue *e;
	struct rw_rec r;

	if (!(e = rw_open_current(&r, RW_EV_BLOCK_RQ_ISSUE)))
		return 0;
	/* 5.10 passes (q, rq), 5.11 on (rq) */
	if (rw_has_arg(RW_EV_BLOCK_RQ_ISSUE, 1))
		rw_fill_rq((void *)e, (struct request *)ctx[1]);
	else
		rw_fill_rq((void *)e, (struct request *)ctx[0]);
	rw_end(&r);
	return 0;
}

/*
 * rw_blk_status turns the errno that older kernels (5.10) pass to
 * block_rq_complete into the blk_status_t later ones pass (6.1 on), after
 * blk_errors[] in block/blk-core.c.
 */
static __always_inline __u8 rw_blk_status(int err)
{
	switch (err) {
	case 0: return 0;	/* BLK_STS_OK */
	case -95: return 1;	/* -EOPNOTSUPP: BLK_STS_NOTSUPP */
	case -110: return 2;	/* -ETIMEDOUT: BLK_STS_TIMEOUT */
	case -28: return 3;	/* -ENOSPC: BLK_STS_NOSPC */
	case -67: return 4;	/* -ENOLINK: BLK_STS_TRANSPORT */
	case -121: return 5;	/* -EREMOTEIO: BLK_STS_TARGET */
	case -52: return 6;	/* -EBADE: BLK_STS_RESV_CONFLICT (NEXUS before 6.5) */
	case -61: return 7;	/* -ENODATA: BLK_STS_MEDIUM */
	case -84: return 8;	/* -EILSEQ: BLK_STS_PROTECTION */
	case -12: return 9;	/* -ENOMEM: BLK_STS_RESOURCE */
	case -11: return 12;	/* -EAGAIN: BLK_STS_AGAIN */
	case -16: return 13;	/* -EBUSY: BLK_STS_DEV_RESOURCE */
	default: return 10;	/* BLK_STS_IOERR */
	}
}

RW_TP(block_rq_complete)
int BPF_PROG(rw_block_rq_complete, struct request *rq)
{
	struct rw_ev_block_rq_complete *e;
	struct rw_rec r;

	if (!(e = rw_open_current(&r, RW_EV_BLOCK_RQ_COMPLETE)))
		return 0;
	rw_fill_rq((void *)e, rq);
	e->bytes = (unsigned int)ctx[2];
	/* An int errno before 5.18 or so, a one-byte blk_status_t since. */
	if (rw_arg_size(RW_EV_BLOCK_RQ_COMPLETE, 1) == 1)
		e->error = (__u8)ctx[1];
	else
		e->error = rw_blk_status((int)ctx[1]);
	rw_end(&r);
	return 0;
}
