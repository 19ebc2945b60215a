/* Placeholder until the serve command lands: says so and fails. */
#include <stdio.h>

#include "commands.h"

int cmd_serve(int argc, char **argv)
{
    fprintf(stderr, "remoca serve: not built yet\n");
    return 1;
}
