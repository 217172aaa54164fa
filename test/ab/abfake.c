/* abfake: a harmless shared object that the hakmem-ab tests preload in place
 * of a malloc library. It replaces nothing; its constructor only appends a
 * line to $ABFAKE_LOAD_LOG (when set), which proves that the dynamic loader
 * really found and loaded the path the tool put in LD_PRELOAD. */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((constructor)) static void abfake_loaded(void)
{
    const char *log = getenv("ABFAKE_LOAD_LOG");
    if (log == NULL || *log == '\0')
        return;
    int fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    static const char line[] = "abfake loaded\n";
    ssize_t n = write(fd, line, sizeof line - 1);
    (void)n;
    close(fd);
}

__attribute__((visibility("default"))) int abfake_marker(void)
{
    return 42;
}
