/*
 * lbd's privilege drop (lbd_privs.h), with libcap-ng: the set to keep is
 * built first, libcap-ng changes the ids while keeping it (PR_SET_KEEPCAPS
 * around setresuid), then CAP_NET_ADMIN is raised into the ambient set for
 * the iptables children, and the result is read back from the kernel.
 */
#include <cap-ng.h>
#include <errno.h>
#include <pwd.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "errbuf.h"
#include "lbd_privs.h"

#define KEEP CAP_NET_ADMIN

/* The process now holds KEEP and nothing else, in every set that counts. */
static int privs_check(char *err, size_t errlen)
{
	capng_get_caps_process();
	if (capng_have_capabilities(CAPNG_SELECT_CAPS) == CAPNG_FULL ||
	    !capng_have_capability(CAPNG_EFFECTIVE, KEEP)) {
		errbuf_printf(err, errlen, "capabilities not as intended after the drop");
		return -1;
	}
	for (unsigned c = 0; c <= CAP_LAST_CAP; c++) {
		if (c != KEEP && (capng_have_capability(CAPNG_EFFECTIVE, c) ||
				  capng_have_capability(CAPNG_PERMITTED, c))) {
			errbuf_printf(err, errlen, "capability %s still held after the drop",
				      capng_capability_to_name(c));
			return -1;
		}
	}
	return 0;
}

/* Not root: keep our ids, cut the capabilities to KEEP if we hold it. */
static int privs_cut(char *err, size_t errlen)
{
	int have;

	capng_get_caps_process();
	have = capng_have_capability(CAPNG_PERMITTED, KEEP);
	capng_clear(CAPNG_SELECT_CAPS);
	if (have)
		capng_update(CAPNG_ADD, CAPNG_EFFECTIVE | CAPNG_PERMITTED | CAPNG_INHERITABLE, KEEP);
	if (capng_apply(CAPNG_SELECT_CAPS) < 0) {
		errbuf_printf(err, errlen, "cannot reduce the capabilities");
		return -1;
	}
	return 0;
}

int lbd_privs_drop(const char *user, char *err, size_t errlen)
{
	struct passwd *pw;
	int rc, bounding;

	if (geteuid() != 0)
		return privs_cut(err, errlen);
	/* Emptying the bounding set needs CAP_SETPCAP; where we lack it (the
	 * systemd unit bounds us already) it stays as given: nothing in it
	 * can come back once permitted is cut, no_new_privs or not. */
	capng_get_caps_process();
	bounding = capng_have_capability(CAPNG_EFFECTIVE, CAP_SETPCAP);
	errno = 0;
	pw = getpwnam(user);
	if (!pw) {
		errbuf_printf(err, errlen, "user '%s': %s", user,
			      errno ? strerror(errno) : "no such user");
		return -1;
	}
	capng_clear(CAPNG_SELECT_BOTH);
	capng_update(CAPNG_ADD, CAPNG_EFFECTIVE | CAPNG_PERMITTED | CAPNG_INHERITABLE |
		     CAPNG_BOUNDING_SET, KEEP);
	if (pw->pw_uid == 0)
		rc = capng_apply(bounding ? CAPNG_SELECT_BOTH : CAPNG_SELECT_CAPS);
	else
		rc = capng_change_id((int)pw->pw_uid, (int)pw->pw_gid,
				     CAPNG_DROP_SUPP_GRP | (bounding ? CAPNG_CLEAR_BOUNDING : 0));
	if (rc < 0) {
		errbuf_printf(err, errlen, "cannot switch to user '%s' keeping CAP_NET_ADMIN (%d)",
			      user, rc);
		return -1;
	}
	/* Ambient: passed to the (non-setuid) programs we exec, iptables. */
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, KEEP, 0, 0) < 0) {
		errbuf_printf(err, errlen, "cannot raise CAP_NET_ADMIN into the ambient set: %s",
			      strerror(errno));
		return -1;
	}
	if (pw->pw_uid != 0 && (getuid() == 0 || geteuid() == 0 || getgid() == 0)) {
		errbuf_printf(err, errlen, "still root after switching to '%s'", user);
		return -1;
	}
	return privs_check(err, errlen);
}
