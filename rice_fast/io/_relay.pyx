"""The relay's compiled forwarding path: recvmmsg, route lookup, sendmmsg.

Theory of operation: the asyncio relay registers each UDP socket's file
descriptor with ``RelayEngine.add_socket`` and, whenever one is readable,
calls ``process(fd)``. That call reads up to ``batch`` datagrams at a time
with recvmmsg, looks each one up in a C hash table of routes, sends every
datagram that has a route with sendmmsg (grouped by outgoing socket) and
returns only the others to Python, which hands them to the sans-IO
``TurnServer``. So ChannelData from a client to a peer, and peer data back
to a client on a bound channel, never become Python objects.

The routes mirror the TurnServer's tables: the relay installs a route pair
when a channel is bound and the peer has a permission, and removes it when
either expires. A route from a listening socket is keyed by the client
address and channel number; one from a relay socket by the peer address.
"""

cimport cython
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.errno cimport EINTR, errno
from libc.stdint cimport int32_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memset

from rice_fast.stun._codec cimport rice_load16, rice_store16


cdef extern from "<sys/uio.h>" nogil:
    struct iovec:
        void *iov_base
        size_t iov_len


cdef extern from "<sys/socket.h>" nogil:
    ctypedef unsigned int socklen_t

    struct sockaddr:
        unsigned short sa_family

    struct msghdr:
        void *msg_name
        socklen_t msg_namelen
        iovec *msg_iov
        size_t msg_iovlen
        void *msg_control
        size_t msg_controllen
        int msg_flags

    struct mmsghdr:
        msghdr msg_hdr
        unsigned int msg_len

    int recvmmsg(int fd, mmsghdr *msgvec, unsigned int vlen, int flags,
                 void *timeout)
    int sendmmsg(int fd, mmsghdr *msgvec, unsigned int vlen, int flags)
    int MSG_DONTWAIT
    int MSG_TRUNC
    int AF_INET
    int AF_INET6


cdef extern from "<netinet/in.h>" nogil:
    struct in_addr:
        uint32_t s_addr

    struct in6_addr:
        uint8_t s6_addr[16]

    struct sockaddr_in:
        unsigned short sin_family
        uint16_t sin_port
        in_addr sin_addr

    struct sockaddr_in6:
        unsigned short sin6_family
        uint16_t sin6_port
        uint32_t sin6_flowinfo
        in6_addr sin6_addr
        uint32_t sin6_scope_id

    uint16_t htons(uint16_t value)
    uint16_t ntohs(uint16_t value)


cdef extern from "<arpa/inet.h>" nogil:
    const char *inet_ntop(int af, const void *src, char *dst, socklen_t size)
    int inet_pton(int af, const char *src, void *dst)


cdef extern from "rice_route.h" nogil:
    ctypedef struct rice_route_key:
        pass

    ctypedef struct rice_route:
        int32_t out_fd
        uint16_t channel
        sockaddr_in6 dest
        socklen_t dest_len
        uint64_t packets
        uint64_t bytes

    ctypedef struct rice_route_table:
        size_t used

    void rice_key_from_sockaddr(rice_route_key *key, int32_t fd, uint16_t channel,
                                const sockaddr *sa)
    int rice_table_init(rice_route_table *t, size_t capacity)
    void rice_table_free(rice_route_table *t)
    rice_route *rice_table_find(const rice_route_table *t, const rice_route_key *key)
    int rice_table_put(rice_route_table *t, const rice_route_key *key,
                       const rice_route *route)
    int rice_table_remove(rice_route_table *t, const rice_route_key *key)


SOCKET_LISTENER = 1
SOCKET_RELAY = 2

cdef enum:
    MAX_FD = 1 << 20


cdef int _to_sockaddr(object address, sockaddr_in6 *out, socklen_t *length) except -1:
    cdef sockaddr_in *sin = <sockaddr_in *>out
    cdef bytes host
    cdef int port
    try:
        host_text, port = address[0], address[1]
    except (TypeError, IndexError):
        raise ValueError(f"address {address!r} is not a (host, port) tuple")
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"port {port} of address {address!r} is outside 0..65535")
    host = str(host_text).partition("%")[0].encode("ascii")
    memset(out, 0, sizeof(sockaddr_in6))
    if inet_pton(AF_INET, host, &sin.sin_addr) == 1:
        sin.sin_family = AF_INET
        sin.sin_port = htons(<uint16_t>port)
        length[0] = sizeof(sockaddr_in)
        return 0
    if inet_pton(AF_INET6, host, &out.sin6_addr) == 1:
        out.sin6_family = AF_INET6
        out.sin6_port = htons(<uint16_t>port)
        length[0] = sizeof(sockaddr_in6)
        return 0
    raise ValueError(f"host {host_text!r} is not an IPv4 or IPv6 address")


cdef object _from_sockaddr(const sockaddr_in6 *address):
    cdef char text[64]
    cdef const sockaddr_in *sin = <const sockaddr_in *>address
    if address.sin6_family == AF_INET:
        inet_ntop(AF_INET, &sin.sin_addr, text, sizeof(text))
        return (text.decode("ascii"), ntohs(sin.sin_port))
    inet_ntop(AF_INET6, &address.sin6_addr, text, sizeof(text))
    return (text.decode("ascii"), ntohs(address.sin6_port))


@cython.final
cdef class RelayEngine:
    """Forward relayed UDP datagrams in batches without Python per datagram.

    Call order: ``add_socket`` for every listening and relay socket, then
    ``set_route`` and ``remove_route`` as channels and permissions change,
    and ``process(fd)`` each time a socket is readable. ``process`` returns
    the datagrams without a route, as ``(data, source)`` pairs, for the
    sans-IO server. The sockets stay owned by the caller: close them after
    ``remove_socket``.
    """

    cdef rice_route_table _table
    cdef int _batch
    cdef int _slot
    cdef uint8_t *_recv_buffer
    cdef mmsghdr *_recv_messages
    cdef iovec *_recv_iov
    cdef sockaddr_in6 *_recv_addresses
    cdef mmsghdr *_send_messages
    cdef iovec *_send_iov
    cdef uint8_t *_send_headers
    cdef int32_t *_send_fds
    cdef uint8_t *_kinds
    cdef readonly uint64_t received
    cdef readonly uint64_t forwarded_to_peers
    cdef readonly uint64_t forwarded_to_clients
    cdef readonly uint64_t to_python
    cdef readonly uint64_t truncated
    cdef readonly uint64_t send_errors
    cdef readonly uint64_t batches

    def __cinit__(self, int batch=64, int slot=2048):
        cdef int i
        if not 1 <= batch <= 1024:
            raise ValueError(f"batch {batch} is outside 1..1024")
        if not 64 <= slot <= 65536:
            raise ValueError(f"slot size {slot} is outside 64..65536")
        self._batch = batch
        self._slot = slot
        if rice_table_init(&self._table, 64) < 0:
            raise MemoryError()
        self._recv_buffer = <uint8_t *>calloc(batch, slot)
        self._recv_messages = <mmsghdr *>calloc(batch, sizeof(mmsghdr))
        self._recv_iov = <iovec *>calloc(batch, sizeof(iovec))
        self._recv_addresses = <sockaddr_in6 *>calloc(batch, sizeof(sockaddr_in6))
        self._send_messages = <mmsghdr *>calloc(batch, sizeof(mmsghdr))
        self._send_iov = <iovec *>calloc(2 * batch, sizeof(iovec))
        self._send_headers = <uint8_t *>calloc(batch, 4)
        self._send_fds = <int32_t *>calloc(batch, sizeof(int32_t))
        self._kinds = <uint8_t *>calloc(MAX_FD, 1)
        if (
            self._recv_buffer == NULL or self._recv_messages == NULL
            or self._recv_iov == NULL or self._recv_addresses == NULL
            or self._send_messages == NULL or self._send_iov == NULL
            or self._send_headers == NULL or self._send_fds == NULL
            or self._kinds == NULL
        ):
            raise MemoryError()
        for i in range(batch):
            self._recv_iov[i].iov_base = self._recv_buffer + <size_t>i * slot
            self._recv_iov[i].iov_len = slot

    def __dealloc__(self):
        rice_table_free(&self._table)
        free(self._recv_buffer)
        free(self._recv_messages)
        free(self._recv_iov)
        free(self._recv_addresses)
        free(self._send_messages)
        free(self._send_iov)
        free(self._send_headers)
        free(self._send_fds)
        free(self._kinds)

    @property
    def routes(self):
        """Number of routes installed."""
        return self._table.used

    def add_socket(self, int fd, int kind):
        """Register a socket as ``SOCKET_LISTENER`` or ``SOCKET_RELAY``."""
        if not 0 <= fd < MAX_FD:
            raise ValueError(f"file descriptor {fd} is outside 0..{MAX_FD - 1}")
        if kind not in (SOCKET_LISTENER, SOCKET_RELAY):
            raise ValueError(f"socket kind {kind} is neither SOCKET_LISTENER nor "
                             "SOCKET_RELAY")
        self._kinds[fd] = <uint8_t>kind

    def remove_socket(self, int fd):
        """Forget a socket; routes that use it must be removed by the caller."""
        if 0 <= fd < MAX_FD:
            self._kinds[fd] = 0

    def set_route(self, int in_fd, remote, int channel, int out_fd, destination,
                  int out_channel):
        """Install or replace the route for datagrams from ``remote``.

        For a client route, ``in_fd`` is the listening socket, ``remote``
        the client, ``channel`` its channel number, ``out_fd`` the relay
        socket, ``destination`` the peer and ``out_channel`` 0. For a peer
        route, ``in_fd`` is the relay socket, ``remote`` the peer,
        ``channel`` 0, ``out_fd`` the listening socket, ``destination`` the
        client and ``out_channel`` the channel to wrap the data in.
        """
        cdef rice_route_key key
        cdef rice_route route
        cdef sockaddr_in6 source
        cdef socklen_t source_len
        if not 0 <= channel <= 0xFFFF or not 0 <= out_channel <= 0xFFFF:
            raise ValueError(f"channel numbers {channel}, {out_channel} are outside "
                             "0..65535")
        _to_sockaddr(remote, &source, &source_len)
        memset(&route, 0, sizeof(route))
        _to_sockaddr(destination, &route.dest, &route.dest_len)
        route.out_fd = out_fd
        route.channel = <uint16_t>out_channel
        rice_key_from_sockaddr(&key, in_fd, <uint16_t>channel, <sockaddr *>&source)
        if rice_table_put(&self._table, &key, &route) < 0:
            raise MemoryError()

    def remove_route(self, int in_fd, remote, int channel):
        """Remove a route; returns whether it existed."""
        cdef rice_route_key key
        cdef sockaddr_in6 source
        cdef socklen_t source_len
        _to_sockaddr(remote, &source, &source_len)
        rice_key_from_sockaddr(&key, in_fd, <uint16_t>channel, <sockaddr *>&source)
        return bool(rice_table_remove(&self._table, &key))

    def route_counters(self, int in_fd, remote, int channel):
        """Return ``(packets, bytes)`` forwarded by a route, or None."""
        cdef rice_route_key key
        cdef sockaddr_in6 source
        cdef socklen_t source_len
        cdef rice_route *route
        _to_sockaddr(remote, &source, &source_len)
        rice_key_from_sockaddr(&key, in_fd, <uint16_t>channel, <sockaddr *>&source)
        route = rice_table_find(&self._table, &key)
        if route == NULL:
            return None
        return (route.packets, route.bytes)

    cdef void _flush(self, int count) noexcept nogil:
        """Send the queued datagrams, one sendmmsg per outgoing socket."""
        cdef int i, j, start, sent
        cdef int32_t fd
        cdef mmsghdr swap
        cdef int32_t swap_fd
        # Insertion sort by socket: batches are small and often sorted.
        for i in range(1, count):
            j = i
            while j > 0 and self._send_fds[j - 1] > self._send_fds[j]:
                swap = self._send_messages[j]
                self._send_messages[j] = self._send_messages[j - 1]
                self._send_messages[j - 1] = swap
                swap_fd = self._send_fds[j]
                self._send_fds[j] = self._send_fds[j - 1]
                self._send_fds[j - 1] = swap_fd
                j -= 1
        start = 0
        while start < count:
            fd = self._send_fds[start]
            i = start
            while i < count and self._send_fds[i] == fd:
                i += 1
            while start < i:
                sent = sendmmsg(fd, self._send_messages + start, i - start, 0)
                if sent < 0:
                    if errno == EINTR:
                        continue
                    # The socket buffer is full or the peer is unreachable:
                    # drop the rest of this group, as a router would.
                    self.send_errors += i - start
                    break
                start += sent
            start = i

    def process(self, int fd, int max_batches=8):
        """Read and forward datagrams waiting on ``fd``.

        Reads at most ``max_batches`` batches so one busy socket cannot
        starve the others. Returns the datagrams without a route as a list
        of ``(data, source)``, or None when there are none.
        """
        cdef int n, i, queued
        cdef uint8_t kind
        cdef const uint8_t *p
        cdef unsigned int length
        cdef uint16_t channel, payload
        cdef rice_route_key key
        cdef rice_route *route
        cdef mmsghdr *out
        cdef list slow = None
        if not 0 <= fd < MAX_FD or self._kinds[fd] == 0:
            raise ValueError(f"file descriptor {fd} was not added with add_socket")
        kind = self._kinds[fd]
        for _ in range(max_batches):
            for i in range(self._batch):
                memset(&self._recv_messages[i], 0, sizeof(mmsghdr))
                self._recv_messages[i].msg_hdr.msg_name = &self._recv_addresses[i]
                self._recv_messages[i].msg_hdr.msg_namelen = sizeof(sockaddr_in6)
                self._recv_messages[i].msg_hdr.msg_iov = &self._recv_iov[i]
                self._recv_messages[i].msg_hdr.msg_iovlen = 1
            with nogil:
                n = recvmmsg(fd, self._recv_messages, self._batch, MSG_DONTWAIT, NULL)
            if n <= 0:
                break
            self.batches += 1
            self.received += n
            queued = 0
            for i in range(n):
                p = self._recv_buffer + <size_t>i * self._slot
                length = self._recv_messages[i].msg_len
                if self._recv_messages[i].msg_hdr.msg_flags & MSG_TRUNC:
                    self.truncated += 1
                    continue
                route = NULL
                if kind == SOCKET_LISTENER:
                    if length >= 4 and (p[0] & 0xC0) == 0x40:
                        channel = rice_load16(p)
                        payload = rice_load16(p + 2)
                        if payload <= length - 4:
                            rice_key_from_sockaddr(
                                &key, fd, channel,
                                <sockaddr *>&self._recv_addresses[i],
                            )
                            route = rice_table_find(&self._table, &key)
                            if route != NULL and route.channel == 0:
                                out = &self._send_messages[queued]
                                memset(out, 0, sizeof(mmsghdr))
                                self._send_iov[2 * queued].iov_base = <void *>(p + 4)
                                self._send_iov[2 * queued].iov_len = payload
                                out.msg_hdr.msg_iov = &self._send_iov[2 * queued]
                                out.msg_hdr.msg_iovlen = 1
                                out.msg_hdr.msg_name = &route.dest
                                out.msg_hdr.msg_namelen = route.dest_len
                                self._send_fds[queued] = route.out_fd
                                route.packets += 1
                                route.bytes += payload
                                queued += 1
                                self.forwarded_to_peers += 1
                                continue
                else:
                    rice_key_from_sockaddr(
                        &key, fd, 0, <sockaddr *>&self._recv_addresses[i]
                    )
                    route = rice_table_find(&self._table, &key)
                    if route != NULL and route.channel != 0 and length <= 0xFFFF:
                        out = &self._send_messages[queued]
                        memset(out, 0, sizeof(mmsghdr))
                        rice_store16(self._send_headers + 4 * queued, route.channel)
                        rice_store16(self._send_headers + 4 * queued + 2,
                                     <uint16_t>length)
                        self._send_iov[2 * queued].iov_base = (
                            self._send_headers + 4 * queued
                        )
                        self._send_iov[2 * queued].iov_len = 4
                        self._send_iov[2 * queued + 1].iov_base = <void *>p
                        self._send_iov[2 * queued + 1].iov_len = length
                        out.msg_hdr.msg_iov = &self._send_iov[2 * queued]
                        out.msg_hdr.msg_iovlen = 2
                        out.msg_hdr.msg_name = &route.dest
                        out.msg_hdr.msg_namelen = route.dest_len
                        self._send_fds[queued] = route.out_fd
                        route.packets += 1
                        route.bytes += length
                        queued += 1
                        self.forwarded_to_clients += 1
                        continue
                if slow is None:
                    slow = []
                slow.append((
                    PyBytes_FromStringAndSize(<const char *>p, length),
                    _from_sockaddr(&self._recv_addresses[i]),
                ))
                self.to_python += 1
            if queued:
                with nogil:
                    self._flush(queued)
            if n < self._batch:
                break
        return slow


cdef enum:
    IO_BATCH = 64


def send_datagrams(int fd, list datagrams):
    """Send ``(data, destination)`` pairs from a UDP socket with sendmmsg.

    Returns how many were sent; it stops early, without raising, when the
    socket would block or the kernel reports an error for a datagram.
    """
    cdef mmsghdr messages[IO_BATCH]
    cdef iovec iov[IO_BATCH]
    cdef sockaddr_in6 addresses[IO_BATCH]
    cdef socklen_t length
    cdef Py_ssize_t total = len(datagrams)
    cdef Py_ssize_t done = 0
    cdef int count, i, sent
    cdef const unsigned char[::1] view
    cdef list keep = []
    while done < total:
        count = <int>min(total - done, IO_BATCH)
        keep.clear()
        for i in range(count):
            data, destination = datagrams[done + i]
            view = data
            keep.append(view)
            _to_sockaddr(destination, &addresses[i], &length)
            memset(&messages[i], 0, sizeof(mmsghdr))
            iov[i].iov_base = <void *>&view[0] if view.shape[0] else NULL
            iov[i].iov_len = view.shape[0]
            messages[i].msg_hdr.msg_iov = &iov[i]
            messages[i].msg_hdr.msg_iovlen = 1
            messages[i].msg_hdr.msg_name = &addresses[i]
            messages[i].msg_hdr.msg_namelen = length
        with nogil:
            sent = sendmmsg(fd, messages, count, MSG_DONTWAIT)
        if sent <= 0:
            break
        done += sent
        if sent < count:
            break
    return done


def send_repeated(int fd, data, destination, Py_ssize_t count):
    """Send the same datagram ``count`` times with sendmmsg; for load tests.

    Returns how many were sent before the socket would block.
    """
    cdef mmsghdr messages[IO_BATCH]
    cdef iovec iov
    cdef sockaddr_in6 address
    cdef socklen_t length
    cdef const unsigned char[::1] view = data
    cdef Py_ssize_t done = 0
    cdef int batch, i, sent
    _to_sockaddr(destination, &address, &length)
    iov.iov_base = <void *>&view[0] if view.shape[0] else NULL
    iov.iov_len = view.shape[0]
    for i in range(IO_BATCH):
        memset(&messages[i], 0, sizeof(mmsghdr))
        messages[i].msg_hdr.msg_iov = &iov
        messages[i].msg_hdr.msg_iovlen = 1
        messages[i].msg_hdr.msg_name = &address
        messages[i].msg_hdr.msg_namelen = length
    with nogil:
        while done < count:
            batch = <int>(count - done if count - done < IO_BATCH else IO_BATCH)
            sent = sendmmsg(fd, messages, batch, MSG_DONTWAIT)
            if sent <= 0:
                break
            done += sent
    return done


def drain(int fd, Py_ssize_t limit=1 << 30):
    """Read and discard waiting datagrams; return ``(datagrams, bytes)``.

    Reads until the socket would block or ``limit`` datagrams were read.
    """
    cdef mmsghdr messages[IO_BATCH]
    cdef iovec iov[IO_BATCH]
    cdef unsigned char *scratch = <unsigned char *>calloc(IO_BATCH, 2048)
    cdef Py_ssize_t datagrams = 0
    cdef Py_ssize_t total = 0
    cdef int i, n
    if scratch == NULL:
        raise MemoryError()
    with nogil:
        while datagrams < limit:
            for i in range(IO_BATCH):
                memset(&messages[i], 0, sizeof(mmsghdr))
                iov[i].iov_base = scratch + <size_t>i * 2048
                iov[i].iov_len = 2048
                messages[i].msg_hdr.msg_iov = &iov[i]
                messages[i].msg_hdr.msg_iovlen = 1
            n = recvmmsg(fd, messages, IO_BATCH, MSG_DONTWAIT, NULL)
            if n <= 0:
                break
            datagrams += n
            for i in range(n):
                total += messages[i].msg_len
    free(scratch)
    return datagrams, total
