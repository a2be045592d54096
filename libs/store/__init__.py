"""Redis data access shared by the gateway, the services and the Redis publisher.

What two parts must both read or write in Redis lives here, once: the Lua
loader (`lua`), and the room, session and presence-view access built on it.
Services meet only through Redis and HTTP; they import this package, never
each other.
"""
