/* SPDX-License-Identifier: GPL-2.0 */
/* The compat shim's hooks into isc.ko's init and exit. */
#ifndef _ISC_COMPAT_INTERNAL_H
#define _ISC_COMPAT_INTERNAL_H

int isc_compat_init(void);
void isc_compat_exit(void);

#endif
