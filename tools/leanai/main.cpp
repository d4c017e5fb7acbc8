// Placeholder entry until the subcommands land (replaced in this change set).
#include <cstdio>
int main() { std::puts("leanai"); return 0; }
