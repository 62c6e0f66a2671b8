/*
 * lb_version: the release every program reports with --version. The Debian
 * package's version (debian/changelog) starts with the same string; the
 * package test checks that they agree.
 */
#ifndef LB_VERSION_H
#define LB_VERSION_H

#define LB_VERSION "0.1.0"

#endif
