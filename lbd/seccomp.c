/*
 * lbd's worker allow-list (lbd_seccomp.h), with libseccomp. What each
 * entry is for:
 *   recvmmsg recvmsg recvfrom       packets from the NFQUEUE socket
 *   sendto sendmsg                  verdicts (libmnl sends with sendto)
 *   futex                           mutexes (defer, capture, engine)
 *   read write writev lseek close   capture files (libpcap's stdio), logs
 *   mmap munmap mremap madvise brk  malloc (mprotect without PROT_EXEC only)
 *   clock_gettime gettimeofday      clocks, when the vDSO is not used
 *   nanosleep clock_nanosleep sched_yield
 *   getpid gettid rt_sigprocmask rt_sigreturn restart_syscall
 *   exit exit_group                 thread and process exit
 *   bpf (map lookup, update, delete only)  the kernel fast path's entries
 *                                   (lb_fastpath.h: install, window edges,
 *                                   removal); never a program or map load
 */
#include <errno.h>
#include <linux/bpf.h>
#include <seccomp.h>
#include <string.h>
#include <sys/mman.h>

#include "errbuf.h"
#include "lbd_seccomp.h"

static const int allowed[] = {
	SCMP_SYS(recvmmsg), SCMP_SYS(recvmsg), SCMP_SYS(recvfrom), SCMP_SYS(sendto),
	SCMP_SYS(sendmsg), SCMP_SYS(futex), SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(writev),
	SCMP_SYS(lseek), SCMP_SYS(close), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(madvise),
	SCMP_SYS(brk), SCMP_SYS(clock_gettime), SCMP_SYS(gettimeofday), SCMP_SYS(nanosleep),
	SCMP_SYS(clock_nanosleep), SCMP_SYS(sched_yield), SCMP_SYS(getpid), SCMP_SYS(gettid),
	SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigreturn), SCMP_SYS(restart_syscall),
	SCMP_SYS(exit), SCMP_SYS(exit_group),
};

static const int bpf_cmds[] = { BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM, BPF_MAP_DELETE_ELEM };

int lbd_seccomp_worker(char *err, size_t errlen)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	int rc = ctx ? 0 : -ENOMEM;

	for (size_t i = 0; rc == 0 && i < sizeof(allowed) / sizeof(allowed[0]); i++)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed[i], 0);
	/* Memory for malloc, never executable memory. */
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
				      SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
				      SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	/* The fast path's map entries by their fds; nothing else of bpf(). */
	for (size_t i = 0; rc == 0 && i < sizeof(bpf_cmds) / sizeof(bpf_cmds[0]); i++)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(bpf), 1,
				      SCMP_A0(SCMP_CMP_EQ, bpf_cmds[i]));
	if (rc == 0)
		rc = seccomp_load(ctx);	/* sets no_new_privs on this thread first */
	seccomp_release(ctx);
	if (rc < 0) {
		errbuf_printf(err, errlen, "cannot load the worker's seccomp filter: %s",
			      strerror(-rc));
		return -1;
	}
	return 0;
}
