/* Route table of the relay's forwarding path: an open-addressing hash map
 * from (socket, remote address, channel) to (socket, destination, channel).
 *
 * One entry forwards ChannelData from a client to a peer (keyed by the
 * listening socket, the client address and the channel number) and one
 * forwards peer datagrams back to the client as ChannelData (keyed by the
 * relay socket and the peer address, channel 0).
 */
#ifndef RICE_ROUTE_H
#define RICE_ROUTE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>

typedef struct {
    int32_t fd;
    uint16_t channel;
    uint16_t port; /* network byte order, as in sockaddr */
    uint8_t family;
    uint8_t pad[3];
    uint8_t addr[16];
} rice_route_key;

typedef struct {
    int32_t out_fd;
    uint16_t channel; /* 0: send the payload as is (to a peer) */
    uint16_t pad;
    struct sockaddr_in6 dest; /* a sockaddr_in when dest.sin6_family is AF_INET */
    socklen_t dest_len;
    uint64_t packets;
    uint64_t bytes;
} rice_route;

typedef struct {
    rice_route_key key;
    rice_route route;
    uint8_t state; /* 0 empty, 1 used, 2 deleted */
} rice_route_slot;

typedef struct {
    rice_route_slot *slots;
    size_t capacity; /* a power of two */
    size_t used;
    size_t deleted;
} rice_route_table;

static void rice_key_from_sockaddr(rice_route_key *key, int32_t fd, uint16_t channel,
                                   const struct sockaddr *sa)
{
    memset(key, 0, sizeof *key);
    key->fd = fd;
    key->channel = channel;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        key->family = 4;
        key->port = sin->sin_port;
        memcpy(key->addr, &sin->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        key->family = 6;
        key->port = sin6->sin6_port;
        memcpy(key->addr, &sin6->sin6_addr, 16);
    }
}

static uint64_t rice_key_hash(const rice_route_key *key)
{
    uint32_t words[sizeof(rice_route_key) / 4];
    uint64_t h = 0x9E3779B97F4A7C15ull;
    size_t i;

    /* memcpy, not a cast, because reading the key through uint32_t
     * pointers breaks strict aliasing and -O3 then reorders the stores. */
    memcpy(words, key, sizeof words);
    for (i = 0; i < sizeof words / 4; i++) {
        h ^= words[i];
        h *= 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
    }
    return h;
}

static int rice_table_init(rice_route_table *t, size_t capacity)
{
    size_t c = 16;

    while (c < capacity) c <<= 1;
    t->slots = (rice_route_slot *)calloc(c, sizeof(rice_route_slot));
    if (t->slots == NULL) return -1;
    t->capacity = c;
    t->used = 0;
    t->deleted = 0;
    return 0;
}

static void rice_table_free(rice_route_table *t)
{
    free(t->slots);
    t->slots = NULL;
    t->capacity = 0;
}

static rice_route *rice_table_find(const rice_route_table *t, const rice_route_key *key)
{
    size_t mask = t->capacity - 1;
    size_t i = (size_t)rice_key_hash(key) & mask;
    rice_route_slot *slot;

    for (;;) {
        slot = &t->slots[i];
        if (slot->state == 0) return NULL;
        if (slot->state == 1 && memcmp(&slot->key, key, sizeof *key) == 0)
            return &slot->route;
        i = (i + 1) & mask;
    }
}

static int rice_table_grow(rice_route_table *t);

/* Insert or replace; returns 0, or -1 when out of memory. */
static int rice_table_put(rice_route_table *t, const rice_route_key *key,
                          const rice_route *route)
{
    size_t mask, i;
    rice_route_slot *slot, *tomb = NULL;

    if ((t->used + t->deleted + 1) * 10 > t->capacity * 7) {
        if (rice_table_grow(t) < 0) return -1;
    }
    mask = t->capacity - 1;
    i = (size_t)rice_key_hash(key) & mask;
    for (;;) {
        slot = &t->slots[i];
        if (slot->state == 0) break;
        if (slot->state == 2) {
            if (tomb == NULL) tomb = slot;
        } else if (memcmp(&slot->key, key, sizeof *key) == 0) {
            slot->route = *route;
            return 0;
        }
        i = (i + 1) & mask;
    }
    if (tomb != NULL) {
        slot = tomb;
        t->deleted--;
    }
    slot->key = *key;
    slot->route = *route;
    slot->state = 1;
    t->used++;
    return 0;
}

static int rice_table_remove(rice_route_table *t, const rice_route_key *key)
{
    size_t mask = t->capacity - 1;
    size_t i = (size_t)rice_key_hash(key) & mask;
    rice_route_slot *slot;

    for (;;) {
        slot = &t->slots[i];
        if (slot->state == 0) return 0;
        if (slot->state == 1 && memcmp(&slot->key, key, sizeof *key) == 0) {
            slot->state = 2;
            t->used--;
            t->deleted++;
            return 1;
        }
        i = (i + 1) & mask;
    }
}

static int rice_table_grow(rice_route_table *t)
{
    rice_route_table bigger;
    size_t i;
    size_t capacity = t->capacity;

    if (t->used * 2 >= t->capacity) capacity *= 2;
    if (rice_table_init(&bigger, capacity) < 0) return -1;
    for (i = 0; i < t->capacity; i++) {
        if (t->slots[i].state == 1)
            rice_table_put(&bigger, &t->slots[i].key, &t->slots[i].route);
    }
    free(t->slots);
    *t = bigger;
    return 0;
}

#endif
