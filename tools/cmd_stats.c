/* Placeholder until the stats command lands: says so and fails. */
#include <stdio.h>

#include "commands.h"

int cmd_stats(int argc, char **argv)
{
    fprintf(stderr, "remoca stats: not built yet\n");
    return 1;
}
