/* SPDX-License-Identifier: BSD-3-Clause */
/* Subcommands of the remoca CLI, one file each (tools/cmd_NAME.c). */
#ifndef REMOCA_TOOLS_COMMANDS_H
#define REMOCA_TOOLS_COMMANDS_H

int cmd_stats(int argc, char **argv); /* remoca stats --server ADDR [--json] */
int cmd_serve(int argc, char **argv); /* remoca serve DISK [--memory SIZE] [--servers ...] */

#endif
