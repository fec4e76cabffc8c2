-- linkstate.lua: a Wireshark dissector for the Exchange 2000/2003 link-state protocols as linkstate speaks them.
--
--   linkstate    TCP 691 inside a routing group: the `691 Available ...` banner, then `{len8} VERB payload` frames
--                (AUTH, ATTACH, ATTACH_ACK, Simple_Poll, POLL_RESPONSE, ORGINFO, REPLY, ACK, STATE, DETACH,
--                INJECT, DUMP; the section-level delta's DELTA and capability words, §2.5), every payload field
--                dissected.
--   xlink2state  SMTP between bridgeheads: commands and replies, X-EXPS, and X-LINK2STATE (the opening digest,
--                FIRST/NEXT/LAST chunks, MORE, DONE_RESPONSE; the negotiated extensions' WINDOW, DELTA, TREE,
--                LIST, GET and PUSH items, §3.11), each side's packet reassembled from its chunks,
--                with expert-info warnings for the MS05-021 shapes (docs/PROTOCOL.md §3.6).
--   orginfo      the OrgInfo link-state table (docs/PROTOCOL.md §1): routing groups, versions, members,
--                connectors with their address spaces, bridgeheads and states; the MD5 digest is recomputed
--                and checked.
--
-- Use:  tshark -X lua_script:contrib/wireshark/linkstate.lua -r capture.pcap -V
--       wireshark -X lua_script:contrib/wireshark/linkstate.lua capture.pcap
-- or copy this file to ~/.local/lib/wireshark/plugins/. Ports: Preferences > Protocols > LINKSTATE / XLINK2STATE
-- (defaults: 691 and the dev ports 6910-6999; SMTP 25 and the dev ports 2525-2599), or "Decode As"
-- (tshark -d tcp.port==6911,linkstate -d tcp.port==2526,xlink2state).
-- Display filters: linkstate.verb == "ATTACH", orginfo.rg.version == "2.0.1", orginfo.digest_ok == 0,
-- xlink2state.chunk.kind == "NEXT", _ws.expert.group == "Security".
-- Written for Wireshark 4.x (Lua 5.2 to 5.4); no C parts, no other files.

local PLUGIN_VERSION = "1.0.0"
if set_plugin_info then
    set_plugin_info({ version = PLUGIN_VERSION, description = "linkstate: TCP 691, X-LINK2STATE and OrgInfo",
                      repository = "linkstate contrib/wireshark" })
end

local FRAME_LIMIT = 16 * 1024 * 1024 -- proto.codec.Limits.max_frame: a declared length + 10 above it is refused
local MAX_LINE = 1024                 -- KB 812455: every X-LINK2STATE command and reply, CRLF included
local MS05_021_SIZE = 520             -- the published exploit's unmarked chunk was over 520 bytes
local NO_LF_LIMIT = 60000             -- the server closes after this many bytes without LF

-- --------------------------------------------------------------------------------------------- MD5 (RFC 1321)

local B = bit32 or bit -- Lua 5.2's bit32, else Wireshark's own LuaBitOp `bit`
local md5
do
    local band, bor, bxor, bnot, lshift, rshift = B.band, B.bor, B.bxor, B.bnot, B.lshift, B.rshift
    local M32 = 4294967296
    local function norm(x) return x % M32 end
    local function rol(x, n) return norm(bor(lshift(x, n), rshift(x, 32 - n))) end
    local K = {
        0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
        0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
        0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
        0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
        0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
        0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
        0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
        0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
    }
    local S = { 7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21 }

    md5 = function(msg)
        local len = #msg
        local bits, tail = len * 8, {}
        for i = 1, 8 do
            tail[i] = string.char(bits % 256)
            bits = math.floor(bits / 256)
        end
        msg = msg .. "\128" .. string.rep("\0", (55 - len) % 64) .. table.concat(tail)
        local a0, b0, c0, d0 = 0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476
        local X = {}
        for chunk = 1, #msg, 64 do
            for i = 0, 15 do
                local b1, b2, b3, b4 = msg:byte(chunk + i * 4, chunk + i * 4 + 3)
                X[i] = b1 + b2 * 256 + b3 * 65536 + b4 * 16777216
            end
            local a, b, c, d = a0, b0, c0, d0
            for i = 0, 63 do
                local f, g
                if i < 16 then
                    f, g = bor(band(b, c), band(bnot(b), d)), i
                elseif i < 32 then
                    f, g = bor(band(d, b), band(bnot(d), c)), (5 * i + 1) % 16
                elseif i < 48 then
                    f, g = bxor(b, c, d), (3 * i + 5) % 16
                else
                    f, g = bxor(c, bor(b, bnot(d))), (7 * i) % 16
                end
                f = norm(norm(f) + a + K[i + 1] + X[g])
                a, d, c = d, c, b
                b = norm(b + rol(f, S[math.floor(i / 16) * 4 + i % 4 + 1]))
            end
            a0, b0, c0, d0 = norm(a0 + a), norm(b0 + b), norm(c0 + c), norm(d0 + d)
        end
        local out = {}
        for _, w in ipairs({ a0, b0, c0, d0 }) do
            for _ = 1, 4 do
                out[#out + 1] = string.format("%02x", w % 256)
                w = math.floor(w / 256)
            end
        end
        return table.concat(out)
    end
end

-- --------------------------------------------------------------------------------------------- protocols

local p691 = Proto("linkstate", "linkstate Routing Engine (TCP 691)")
local psmtp = Proto("xlink2state", "linkstate SMTP and X-LINK2STATE")
local porg = Proto("orginfo", "OrgInfo link-state table")

local SEC = expert.group.SECURITY or expert.group.MALFORMED
local WARN, ERR, NOTE = expert.severity.WARN, expert.severity.ERROR, expert.severity.NOTE

-- --- OrgInfo fields ------------------------------------------------------------------------------------------

local O = {
    len = ProtoField.uint32("orginfo.len", "Length (len8)", base.DEC),
    digest = ProtoField.string("orginfo.digest", "Digest (carried)"),
    computed = ProtoField.string("orginfo.digest_computed", "Digest (computed)"),
    digest_ok = ProtoField.bool("orginfo.digest_ok", "Digest matches the table"),
    digest_only = ProtoField.bool("orginfo.digest_only", "Digest-only frame (no sections)"),
    groups = ProtoField.uint32("orginfo.groups", "Routing groups", base.DEC),
    rg = ProtoField.string("orginfo.rg", "Routing group"),
    rg_guid = ProtoField.string("orginfo.rg.guid", "Routing group GUID"),
    rg_master = ProtoField.string("orginfo.rg.master", "Master GUID"),
    rg_version = ProtoField.string("orginfo.rg.version", "Version (major.minor.user)"),
    rg_major = ProtoField.uint64("orginfo.rg.major", "Major", base.DEC),
    rg_minor = ProtoField.uint64("orginfo.rg.minor", "Minor", base.DEC),
    rg_user = ProtoField.uint64("orginfo.rg.user", "User", base.DEC),
    rg_version_guid = ProtoField.string("orginfo.rg.version_guid", "Version GUID"),
    rg_smtp = ProtoField.string("orginfo.rg.smtp", "SMTP address"),
    rg_x400 = ProtoField.string("orginfo.rg.x400", "X.400 address"),
    rg_x500 = ProtoField.string("orginfo.rg.x500", "X.500 address"),
    rg_tombstone = ProtoField.bool("orginfo.rg.tombstone", "Deleted (tombstone)"),
    member = ProtoField.string("orginfo.member", "Member"),
    member_guid = ProtoField.string("orginfo.member.guid", "Server GUID"),
    member_connected = ProtoField.string("orginfo.member.connected", "Connected to the master"),
    member_flags = ProtoField.uint64("orginfo.member.state_flags", "State flags", base.HEX),
    member_build = ProtoField.uint64("orginfo.member.build", "Build", base.DEC),
    member_status = ProtoField.string("orginfo.member.service_status", "Service status"),
    conn = ProtoField.string("orginfo.connector", "Connector"),
    conn_guid = ProtoField.string("orginfo.connector.guid", "Connector GUID"),
    conn_type = ProtoField.string("orginfo.connector.type", "Type"),
    conn_source = ProtoField.string("orginfo.connector.source", "Source address"),
    conn_target = ProtoField.string("orginfo.connector.target", "Target address"),
    conn_dn = ProtoField.string("orginfo.connector.dn", "DN"),
    conn_schedule = ProtoField.uint64("orginfo.connector.schedule", "Schedule (0 always, 1 never, 2 custom)"),
    conn_scope = ProtoField.uint64("orginfo.connector.scope", "Scope (0 organization, 1 routing group)"),
    conn_triggered = ProtoField.uint64("orginfo.connector.triggered", "Remote-triggered"),
    conn_priority = ProtoField.uint64("orginfo.connector.priority", "Disallowed priorities (bitmask)"),
    conn_max_size = ProtoField.string("orginfo.connector.max_size", "Max size (KB)"),
    conn_large = ProtoField.string("orginfo.connector.large_threshold", "Large-message threshold (KB)"),
    conn_no_pf = ProtoField.uint64("orginfo.connector.no_pf_referrals", "No public-folder referrals"),
    conn_accept_default = ProtoField.uint64("orginfo.connector.accept_by_default", "Accept by default"),
    conn_dn_block = ProtoField.string("orginfo.connector.dn_block", "DN block"),
    conn_dn_item = ProtoField.string("orginfo.connector.dn_item", "DN"),
    space = ProtoField.string("orginfo.connector.space", "Address space"),
    space_type = ProtoField.string("orginfo.connector.space.type", "Type"),
    space_address = ProtoField.string("orginfo.connector.space.address", "Address"),
    space_cost = ProtoField.uint64("orginfo.connector.space.cost", "Cost", base.DEC),
    bh = ProtoField.string("orginfo.connector.bh", "Bridgehead"),
    bh_guid = ProtoField.string("orginfo.connector.bh.guid", "Virtual server GUID"),
    bh_state = ProtoField.string("orginfo.connector.bh.state", "State"),
    bh_fqdn = ProtoField.string("orginfo.connector.bh.fqdn", "FQDN"),
    targbh = ProtoField.string("orginfo.connector.targbh", "Target bridgehead"),
    conn_state = ProtoField.string("orginfo.connector.state", "Connector state"),
}
porg.fields = O

local OE = {
    malformed = ProtoExpert.new("orginfo.malformed", "Malformed OrgInfo frame", expert.group.MALFORMED, ERR),
    digest = ProtoExpert.new("orginfo.digest_mismatch", "OrgInfo digest does not match the table",
                             expert.group.CHECKSUM, WARN),
}
porg.experts = OE

-- --- TCP 691 fields ------------------------------------------------------------------------------------------

local function sfield(abbr, name) return ProtoField.string("linkstate." .. abbr, name) end
local function nfield(abbr, name) return ProtoField.uint64("linkstate." .. abbr, name, base.DEC) end

local L = {
    banner = sfield("banner", "Banner"),
    len = ProtoField.uint32("linkstate.len", "Length (len8)", base.DEC),
    verb = sfield("verb", "Verb"),
    sub = sfield("sub", "Keyword"),
    auth_kind = sfield("auth.kind", "Initiator kind"),
    guid = sfield("guid", "GUID"),
    nonce = sfield("nonce", "Nonce"),
    proof = sfield("proof", "Proof (HMAC-SHA256)"),
    reason = sfield("reason", "Reason"),
    member = sfield("member", "Member GUID"),
    routing_group = sfield("routing_group", "Routing group GUID"),
    master = sfield("master", "Master GUID"),
    digest = sfield("digest", "Digest"),
    major = nfield("major", "Major"),
    minor = nfield("minor", "Minor"),
    user = nfield("user", "User"),
    version_guid = sfield("version_guid", "Version GUID"),
    attached = nfield("attached", "Attached members"),
    servers = nfield("servers", "Servers in the group"),
    quorum = sfield("quorum", "Quorum"),
    reply = sfield("reply", "Reply (FOLLOWS: the member's packet follows)"),
    connector = sfield("connector", "Connector GUID"),
    bridgehead = sfield("bridgehead", "Bridgehead virtual server GUID"),
    bh_state = sfield("bh_state", "Bridgehead state"),
    server = sfield("server", "Server GUID"),
    service_status = sfield("service_status", "Service status"),
    fault = sfield("fault", "Forced state"),
    node = sfield("node", "Node GUID"),
    role = sfield("role", "Role"),
    attached_yn = sfield("attached_to_master", "Attached to the master"),
    attached_count = nfield("attached_count", "Attached members"),
    cap = sfield("capability", "Capability (negotiated extension)"),
    target = sfield("delta.target", "Digest of the sender's whole table after the delta"),
}
p691.fields = L

local LE = {
    bad_frame = ProtoExpert.new("linkstate.bad_frame", "Not a 691 frame", expert.group.MALFORMED, ERR),
    bad_payload = ProtoExpert.new("linkstate.bad_payload", "Payload does not parse", expert.group.MALFORMED, ERR),
    unknown_verb = ProtoExpert.new("linkstate.unknown_verb", "Unknown verb", expert.group.MALFORMED, WARN),
    over_limit = ProtoExpert.new("linkstate.over_limit", "Frame length over the 16 MiB limit", SEC, WARN),
}
p691.experts = LE

-- kind of each payload field: hex32 | num | word | lstr
local KIND = {
    auth_kind = "word", guid = "hex32", nonce = "hex32", proof = "hex64", reason = "lstr", member = "hex32",
    routing_group = "hex32", master = "hex32", digest = "hex32", major = "num", minor = "num", user = "num",
    version_guid = "hex32", attached = "num", servers = "num", quorum = "word", reply = "word",
    connector = "hex32", bridgehead = "hex32", bh_state = "word", server = "hex32", service_status = "lstr",
    fault = "word", node = "hex32", role = "word", attached_yn = "word", attached_count = "num",
}

-- payload layout of each verb (docs/PROTOCOL.md §2.2, §2.3): plain fields, or a keyword choosing fields
local VERBS = {
    AUTH = { sub = { HELLO = { "auth_kind", "guid", "nonce" }, CHALLENGE = { "guid", "nonce", "proof" },
                     PROOF = { "proof" }, OK = {}, FAIL = { "reason" } } },
    ATTACH = { fields = { "member", "routing_group", "master", "digest", "major", "minor", "user", "version_guid" },
               caps = true },
    ATTACH_ACK = { sub = { OK = { "digest", "attached", "servers", "quorum" }, REFUSED = { "reason" } }, caps = true },
    SIMPLE_POLL = { fields = { "digest" } },
    POLL_RESPONSE = { sub = { SAME = { "digest" }, DIFFERENT = { "digest" } } },
    REPLY = { fields = { "digest", "reply" } },
    ACK = { fields = { "digest" } },
    STATE = { sub = { BH = { "connector", "bridgehead", "bh_state" }, SERVICE = { "server", "service_status" },
                      FAULT = { "connector", "fault" } } },
    DETACH = { fields = { "reason" } },
    INJECT = { fields = { "routing_group" } },
    DUMP = { sub = { VIEW = { "node", "routing_group", "role", "master", "attached_yn", "quorum", "attached_count",
                              "servers" } }, empty = true },
}

-- --- SMTP / X-LINK2STATE fields --------------------------------------------------------------------------------

local X = {
    command = ProtoField.string("xlink2state.command", "Command"),
    args = ProtoField.string("xlink2state.args", "Arguments"),
    reply_code = ProtoField.uint32("xlink2state.reply.code", "Reply code", base.DEC),
    reply_text = ProtoField.string("xlink2state.reply.text", "Reply text"),
    content = ProtoField.string("xlink2state.content", "Message content line"),
    line_len = ProtoField.uint32("xlink2state.line_len", "Line length (CRLF included)", base.DEC),
    keyword = ProtoField.string("xlink2state.keyword", "X-LINK2STATE keyword"),
    chunk_kind = ProtoField.string("xlink2state.chunk.kind", "Chunk"),
    chunk_len = ProtoField.uint32("xlink2state.chunk.len", "Chunk data length", base.DEC),
    chunk_index = ProtoField.uint32("xlink2state.chunk.index", "Chunk number in its packet", base.DEC),
    chunk_data = ProtoField.string("xlink2state.chunk.data", "Chunk data"),
    declared = ProtoField.uint32("xlink2state.packet.declared", "Packet length (len8 + 10)", base.DEC),
    received = ProtoField.uint32("xlink2state.packet.received", "Packet bytes received so far", base.DEC),
    complete = ProtoField.bool("xlink2state.packet.complete", "Packet complete"),
    chunks = ProtoField.uint32("xlink2state.packet.chunks", "Chunks in the packet", base.DEC),
    in_frames = ProtoField.string("xlink2state.packet.frames", "Chunks in frames"),
    opening = ProtoField.bool("xlink2state.opening", "Opening (the sender's digest only)"),
    digest = ProtoField.string("xlink2state.digest", "Digest"),
    more = ProtoField.bool("xlink2state.more", "MORE (send the next chunk)"),
    done_response = ProtoField.bool("xlink2state.done_response", "DONE_RESPONSE (digests equal)"),
    extension = ProtoField.string("xlink2state.extension", "Negotiated extension item (WINDOW, DELTA, TREE, LIST, "
                                  .. "GET, PUSH)"),
    ext_value = ProtoField.string("xlink2state.extension.value", "Extension value"),
}
psmtp.fields = X

local XE = {
    no_first = ProtoExpert.new("xlink2state.ms05_021.no_first",
        "MS05-021 shape: CHUNK with no FIRST CHUNK before it (Exchange appended to a buffer it never allocated)",
        SEC, WARN),
    last_alone = ProtoExpert.new("xlink2state.ms05_021.last_alone",
        "MS05-021 shape: LAST CHUNK continues no FIRST CHUNK and is no whole frame", SEC, WARN),
    first_again = ProtoExpert.new("xlink2state.ms05_021.first_in_progress",
        "MS05-021 shape: FIRST CHUNK while a packet is in progress", SEC, WARN),
    bad_header = ProtoExpert.new("xlink2state.ms05_021.bad_header",
        "MS05-021 shape: malformed {len8} header", SEC, WARN),
    over_limit = ProtoExpert.new("xlink2state.ms05_021.over_limit",
        "MS05-021 shape: declared length over the frame limit", SEC, WARN),
    past_length = ProtoExpert.new("xlink2state.ms05_021.past_length",
        "MS05-021 shape: chunk passes the declared length", SEC, WARN),
    short = ProtoExpert.new("xlink2state.ms05_021.short", "LAST CHUNK ends the packet short", SEC, WARN),
    long_line = ProtoExpert.new("xlink2state.ms05_021.long_line",
        "MS05-021 shape: line over 1,024 bytes (KB 812455)", SEC, WARN),
    bad_data = ProtoExpert.new("xlink2state.ms05_021.bad_data", "Empty chunk, or CR/NUL in chunk data", SEC, WARN),
    unknown = ProtoExpert.new("xlink2state.unknown_keyword", "Unknown X-LINK2STATE keyword", expert.group.PROTOCOL,
                              WARN),
    no_lf = ProtoExpert.new("xlink2state.no_lf", "No LF in 60,000 bytes", SEC, WARN),
}
psmtp.experts = XE

-- --------------------------------------------------------------------------------------------- a cursor

-- A cursor over a Lua string `s` that came from tvb bytes at `base`; positions are 1-based in `s`.
local Cur = {}
Cur.__index = Cur

local function cursor(s, tvb, base)
    return setmetatable({ s = s, p = 1, tvb = tvb, base = base }, Cur)
end

function Cur:range(pos, n) return self.tvb(self.base + pos - 1, n) end
function Cur:fail(msg) error({ pos = self.p, msg = msg }, 0) end
function Cur:peek() return self.s:sub(self.p, self.p) end
function Cur:at_end() return self.p > #self.s end

function Cur:sep()
    if self:peek() ~= " " then self:fail("expected a space, found " .. string.format("%q", self:peek())) end
    self.p = self.p + 1
end

function Cur:lit(text)
    if self.s:sub(self.p, self.p + #text - 1) ~= text then self:fail("expected '" .. text .. "'") end
    local at = self.p
    self.p = self.p + #text
    return at
end

-- a token: bytes up to the next space or parenthesis
function Cur:token()
    local a, b = self.s:find("^[^ ()]+", self.p)
    if not a then self:fail("expected a token") end
    self.p = b + 1
    return self.s:sub(a, b), a, b - a + 1
end

function Cur:hexlen(n)
    local t, a, len = self:token()
    if #t ~= n or t:find("[^0-9a-f]") then
        self.p = a
        self:fail("expected " .. n .. " lowercase hex digits")
    end
    return t, a, len
end

function Cur:num()
    local t, a, len = self:token()
    if #t > 16 or t:find("[^0-9a-f]") then
        self.p = a
        self:fail("expected a hex number of at most 16 digits")
    end
    return UInt64.fromhex(t), a, len, t
end

-- `{hexlen}bytes`, read by count
function Cur:lstr()
    local a = self.p
    local hl = self.s:match("^{(%x*)}", a)
    if not hl or #hl > 8 then self:fail("expected a {len} string") end
    local n = (#hl == 0) and 0 or tonumber(hl, 16)
    local start = a + #hl + 2
    if start + n - 1 > #self.s then self:fail("string of " .. n .. " bytes runs past the frame") end
    self.p = start + n
    return self.s:sub(start, start + n - 1), a, start + n - a
end

function Cur:word_in(choices)
    local t, a, len = self:token()
    for _, c in ipairs(choices) do
        if t == c then return t, a, len end
    end
    self.p = a
    self:fail("expected " .. table.concat(choices, " or "))
end

-- `()` or `(` then records `SEP record` (each record ends with its own SEP) then `)`
function Cur:records(fn)
    self:lit("(")
    if self:peek() == ")" then
        self.p = self.p + 1
        return
    end
    repeat
        self:sep()
        fn()
    until self:peek() == ")" or self:at_end()
    self:lit(")")
end

-- --------------------------------------------------------------------------------------------- OrgInfo

local function add_str(tree, field, c, value, a, n) return tree:add(field, c:range(a, n), value) end

local function kb(value_text)
    if value_text == "ffffffff" then return "unlimited" end
    return tostring(tonumber(value_text, 16))
end

local function dissect_member(c, tree)
    local start = c.p
    local guid, ga, gn = c:hexlen(32)
    local item = tree:add(O.member, c:range(ga, gn), guid)
    item:add(O.member_guid, c:range(ga, gn), guid)
    c:sep()
    local yn, ya, yl = c:word_in({ "YES", "NO" })
    item:add(O.member_connected, c:range(ya, yl), yn)
    c:sep()
    local flags, fa, fl = c:num()
    item:add(O.member_flags, c:range(fa, fl), flags)
    c:sep()
    local build, ba, bl = c:num()
    item:add(O.member_build, c:range(ba, bl), build)
    c:sep()
    local status, sa, sl = c:lstr()
    item:add(O.member_status, c:range(sa, sl), status)
    c:sep()
    item:set_len(c.p - start)
    item:set_text(string.format("Member %s  connected %s  service status %s", guid, yn, status))
end

local function dissect_dn_block(c, tree, name)
    local start = c.p
    local count, ca, cl, ctext = c:num()
    local item = tree:add(O.conn_dn_block, c:range(ca, cl), name)
    c:sep()
    local n = 0
    c:records(function()
        local dn, a, l = c:lstr()
        item:add(O.conn_dn_item, c:range(a, l), dn)
        c:sep()
        n = n + 1
    end)
    item:set_len(c.p - start)
    item:set_text(string.format("%s: %d DN(s) (count %s)", name, n, tostring(tonumber(ctext, 16))))
end

local function dissect_connector(c, tree)
    local start = c.p
    local guid, ga, gn = c:hexlen(32)
    local item = tree:add(O.conn, c:range(ga, gn), guid)
    item:add(O.conn_guid, c:range(ga, gn), guid)
    c:sep(); c:lit("("); c:sep(); c:lit("CONFIG"); c:sep()
    local ctype
    for _, f in ipairs({ O.conn_type, O.conn_source, O.conn_target, O.conn_dn }) do
        local v, a, l = c:lstr()
        item:add(f, c:range(a, l), v)
        ctype = ctype or v
        c:sep()
    end
    for _, f in ipairs({ O.conn_schedule, O.conn_scope, O.conn_triggered, O.conn_priority }) do
        local v, a, l = c:num()
        item:add(f, c:range(a, l), v)
        c:sep()
    end
    for _, f in ipairs({ O.conn_max_size, O.conn_large }) do
        local v, a, l = c:hexlen(8)
        item:add(f, c:range(a, l), kb(v))
        c:sep()
    end
    for _, f in ipairs({ O.conn_no_pf, O.conn_accept_default }) do
        local v, a, l = c:num()
        item:add(f, c:range(a, l), v)
        c:sep()
    end
    for _, name in ipairs({ "accept", "reject", "reserved3", "reserved4" }) do
        dissect_dn_block(c, item, name)
        c:sep()
    end
    c:sep()
    c:lit("ARROWS"); c:sep()
    local spaces = {}
    c:records(function()
        local s0 = c.p
        local t, ta, tl = c:lstr(); c:sep()
        local addr, aa, al = c:lstr(); c:sep()
        local cost, ka, kl = c:num(); c:sep()
        local sp = item:add(O.space, c:range(s0, c.p - s0), t .. ":" .. addr)
        sp:add(O.space_type, c:range(ta, tl), t)
        sp:add(O.space_address, c:range(aa, al), addr)
        sp:add(O.space_cost, c:range(ka, kl), cost)
        sp:set_text(string.format("Address space %s:%s cost %s", t, addr, tostring(cost)))
        spaces[#spaces + 1] = t .. ":" .. addr .. " " .. tostring(cost)
    end)
    c:sep(); c:lit("BH"); c:sep()
    c:records(function()
        local s0 = c.p
        local g, a, l = c:hexlen(32); c:sep()
        local st, sa, sl = c:word_in({ "CONN_AVAIL", "CONN_NOT_AVAILABLE", "CONN_NOT_STARTED" }); c:sep()
        local fqdn, fa, fl = c:lstr(); c:sep()
        local bh = item:add(O.bh, c:range(s0, c.p - s0), g)
        bh:add(O.bh_guid, c:range(a, l), g)
        bh:add(O.bh_state, c:range(sa, sl), st)
        bh:add(O.bh_fqdn, c:range(fa, fl), fqdn)
        bh:set_text(string.format("Bridgehead %s (%s) %s", fqdn, g, st))
    end)
    c:sep(); c:lit("TARGBH"); c:sep()
    c:records(function()
        local v, a, l = c:lstr(); c:sep()
        item:add(O.targbh, c:range(a, l), v)
    end)
    c:sep(); c:lit("STATE"); c:sep()
    local state, sa, sl = c:word_in({ "UP", "DOWN" })
    item:add(O.conn_state, c:range(sa, sl), state)
    c:lit(")")
    item:set_len(c.p - start)
    item:set_text(string.format("Connector %s  %s  STATE %s  %s", guid, ctype or "?", state,
                                table.concat(spaces, ", ")))
    return state
end

local function dissect_section(c, tree)
    local start = c.p
    c:lit("("); c:sep()
    local guid, ga, gn = c:hexlen(32)
    local item = tree:add(O.rg, c:range(ga, gn), guid)
    item:add(O.rg_guid, c:range(ga, gn), guid)
    c:sep()
    local master, ma, ml = c:hexlen(32)
    item:add(O.rg_master, c:range(ma, ml), master)
    c:sep()
    local v = {}
    local vstart = c.p
    for i, f in ipairs({ O.rg_major, O.rg_minor, O.rg_user }) do
        local n, a, l = c:num()
        v[i] = n
        item:add(f, c:range(a, l), n)
        c:sep()
    end
    local version = string.format("%s.%s.%s", tostring(v[1]), tostring(v[2]), tostring(v[3]))
    item:add(O.rg_version, c:range(vstart, c.p - vstart - 1), version)
    local vg, va, vl = c:hexlen(32)
    item:add(O.rg_version_guid, c:range(va, vl), vg)
    c:sep()
    local smtp
    for _, f in ipairs({ O.rg_smtp, O.rg_x400, O.rg_x500 }) do
        local s, a, l = c:lstr()
        item:add(f, c:range(a, l), s)
        smtp = smtp or s
        c:sep()
    end
    if smtp:sub(1, 7) == "deleted" then item:add(O.rg_tombstone, c:range(start, 1), true) end
    local members, connected = 0, 0
    c:records(function()
        local before = c.p
        dissect_member(c, item)
        members = members + 1
        if c.s:sub(before + 33, before + 35) == "YES" then connected = connected + 1 end
    end)
    c:sep()
    local conns, down = 0, 0
    c:lit("(")
    if c:peek() == ")" then
        c.p = c.p + 1
    else
        repeat
            c:sep()
            if dissect_connector(c, item) == "DOWN" then down = down + 1 end
            conns = conns + 1
        until c:peek() ~= " "
        c:lit(")")
    end
    c:lit(")")
    item:set_len(c.p - start)
    item:set_text(string.format("Routing group %s  version %s  master %s  members %d (%d connected)  connectors %d"
                                .. " (%d DOWN)", guid, version, master, members, connected, conns, down))
    return guid, version
end

-- Dissect one OrgInfo frame (`{len8} ORGINFO <md5> sections `) at tvb[off, off+total).
-- Returns a one-line summary for the Info column.
local function dissect_orginfo(tvb, off, total, tree, title)
    local s = tvb:raw(off, total)
    local item = tree:add(porg, tvb(off, total), title or "OrgInfo")
    local c = cursor(s, tvb, off)
    local summary = "ORGINFO"
    local ok, err = pcall(function()
        local len = s:match("^{(%x%x%x%x%x%x%x%x)}")
        if not len or len:find("[A-F]") then c:fail("expected {len8}: { + 8 lowercase hex digits + }") end
        c.p = 11
        item:add(O.len, c:range(2, 8), tonumber(len, 16))
        if tonumber(len, 16) ~= #s - 10 then c:fail("len8 says " .. tonumber(len, 16) .. " bytes, the frame has "
                                                    .. (#s - 10)) end
        c:sep(); c:lit("ORGINFO"); c:sep()
        local digest, da, dl = c:hexlen(32)
        item:add(O.digest, c:range(da, dl), digest)
        c:sep()
        local covered_from = c.p
        local groups, versions = 0, {}
        while c:peek() == "(" do
            local _, version = dissect_section(c, item)
            c:sep()
            groups = groups + 1
            versions[#versions + 1] = version
        end
        c:sep()
        if not c:at_end() then c:fail("bytes after the frame's final separator") end
        item:add(O.groups, c:range(covered_from, #s - covered_from + 1), groups)
        local computed = md5(s:sub(covered_from))
        local citem = item:add(O.computed, c:range(da, dl), computed)
        citem:set_generated()
        local match = computed == digest
        local status
        if groups == 0 and not match then
            item:add(O.digest_only, c:range(da, dl), true):set_generated()
            status = "digest-only frame: the sender's digest"
        else
            local okitem = item:add(O.digest_ok, c:range(da, dl), match)
            okitem:set_generated()
            if not match then okitem:add_proto_expert_info(OE.digest, "computed " .. computed) end
            status = match and "digest ok" or "DIGEST MISMATCH"
        end
        item:append_text(string.format(": %d routing group(s), digest %s (%s)", groups, digest, status))
        summary = string.format("ORGINFO %d group(s) [%s] digest %s… %s", groups, table.concat(versions, " "),
                                digest:sub(1, 8), status)
    end)
    if not ok then
        local pos = type(err) == "table" and err.pos or 1
        local msg = type(err) == "table" and err.msg or tostring(err)
        local at = math.min(pos, #s)
        item:add_tvb_expert_info(OE.malformed, tvb(off + at - 1, math.max(1, #s - at + 1)),
                                 string.format("Malformed OrgInfo at byte %d: %s", pos - 1, msg))
        summary = "ORGINFO (malformed at byte " .. (pos - 1) .. ")"
    end
    return summary
end

-- The Info column: TCP fences it between the PDUs of one segment, so a later PDU's text is appended after ours
local function set_info(pinfo, text)
    local current = tostring(pinfo.cols.info)
    if current:find("^[CS]: ") then
        pinfo.cols.info:append(" | " .. text)
    else
        pinfo.cols.info:set(text)
    end
end

-- --------------------------------------------------------------------------------------------- TCP 691

local function dissect_payload(c, tree, names)
    local shown = {}
    for _, name in ipairs(names) do
        c:sep()
        local kind = KIND[name]
        local value, a, n
        if kind == "hex32" then
            value, a, n = c:hexlen(32)
        elseif kind == "hex64" then
            value, a, n = c:hexlen(64)
        elseif kind == "num" then
            value, a, n = c:num()
        elseif kind == "lstr" then
            value, a, n = c:lstr()
        else
            value, a, n = c:token()
        end
        tree:add(L[name], c:range(a, n), value)
        if kind == "word" or kind == "lstr" then shown[#shown + 1] = value end
    end
    return shown
end

-- one `{len8} VERB payload` frame of `total` bytes at `off`; returns the Info text
local function dissect_frame(tvb, off, total, tree)
    local s = tvb:raw(off, total)
    local verb = s:match("^{%x%x%x%x%x%x%x%x} ([^ ]+)") or "?"
    local upper = verb:upper()
    local item = tree:add(p691, tvb(off, total), "linkstate frame: " .. verb)
    item:add(L.len, tvb(off + 1, 8), total - 10)
    local c = cursor(s, tvb, off)
    c.p = 12
    item:add(L.verb, c:range(c.p, #verb), verb)
    c.p = c.p + #verb
    if upper == "ORGINFO" then
        local summary = dissect_orginfo(tvb, off, total, item, "OrgInfo")
        item:set_text("linkstate " .. summary)
        return summary
    end
    if upper == "DELTA" and s:match("^{%x+} DELTA %x+ {") then -- docs/PROTOCOL.md §2.5: the target, then a frame
        local target = s:match("^{%x+} DELTA (%x+) ")
        item:add(L.target, tvb(off + 17, #target), target)
        local inner = 17 + #target + 1
        local summary = "DELTA " .. dissect_orginfo(tvb, off + inner, total - inner, item, "Changed sections")
        item:set_text("linkstate " .. summary)
        return summary
    end
    local spec = VERBS[upper]
    if not spec then
        item:add_proto_expert_info(LE.unknown_verb, "Unknown verb " .. verb)
        return verb .. " (unknown verb)"
    end
    local info = { verb }
    local ok, err = pcall(function()
        local names = spec.fields
        if spec.sub then
            if spec.empty and c:at_end() then return end
            c:sep()
            local sub, a, n = c:token()
            item:add(L.sub, c:range(a, n), sub)
            info[#info + 1] = sub
            names = spec.sub[sub]
            if not names then c:fail("unexpected keyword " .. sub) end
        end
        for _, v in ipairs(dissect_payload(c, item, names)) do info[#info + 1] = v end
        while spec.caps and not c:at_end() do -- capability words after ATTACH / ATTACH_ACK OK (§2.5)
            c:sep()
            local cap, a, n = c:token()
            item:add(L.cap, c:range(a, n), cap)
            info[#info + 1] = cap
        end
        if not c:at_end() then c:fail("bytes after the payload") end
    end)
    if not ok then
        local pos = type(err) == "table" and err.pos or 1
        local msg = type(err) == "table" and err.msg or tostring(err)
        item:add_proto_expert_info(LE.bad_payload, string.format("at byte %d: %s", pos - 1, msg))
        info[#info + 1] = "(malformed)"
    end
    local text = table.concat(info, " ")
    item:set_text("linkstate " .. text)
    return text
end

local function dissect_691(tvb, pinfo, tree)
    pinfo.cols.protocol:set("LINKSTATE")
    local off, total, infos = 0, tvb:len(), {}
    local from_server = pinfo.src_port == pinfo.match_uint
    while off < total do
        local first = tvb:raw(off, math.min(4, total - off))
        if first == "691 " or (first:sub(1, 1) ~= "{" and #first < 4 and ("691 "):sub(1, #first) == first) then
            local line = tvb:raw(off, total - off)
            local lf = line:find("\n", 1, true)
            if not lf then
                if total - off > 512 then
                    tree:add_proto_expert_info(LE.bad_frame, "banner longer than 512 bytes")
                    return total
                end
                pinfo.desegment_offset, pinfo.desegment_len = off, DESEGMENT_ONE_MORE_SEGMENT
                return total
            end
            local text = line:sub(1, lf):gsub("\r?\n$", "")
            local item = tree:add(p691, tvb(off, lf), "linkstate banner")
            item:add(L.banner, tvb(off, #text), text)
            infos[#infos + 1] = "Banner: " .. text
            off = off + lf
        elseif first:sub(1, 1) == "{" then
            if total - off < 10 then
                pinfo.desegment_offset, pinfo.desegment_len = off, DESEGMENT_ONE_MORE_SEGMENT
                return total
            end
            local hdr = tvb:raw(off, 10)
            local len = hdr:match("^{(%x%x%x%x%x%x%x%x)}$")
            if not len or len:find("[A-F]") then
                tree:add(p691, tvb(off, total - off), "linkstate: bad frame header")
                    :add_proto_expert_info(LE.bad_frame, "header is not { + 8 lowercase hex digits + }")
                infos[#infos + 1] = "bad frame header"
                break
            end
            local need = 10 + tonumber(len, 16)
            if need > FRAME_LIMIT + 10 then
                tree:add(p691, tvb(off, 10), "linkstate: frame over the limit")
                    :add_proto_expert_info(LE.over_limit, "declared " .. (need - 10) .. " bytes")
                infos[#infos + 1] = "frame over the limit"
                break
            end
            if total - off < need then
                pinfo.desegment_offset, pinfo.desegment_len = off, need - (total - off)
                return total
            end
            infos[#infos + 1] = dissect_frame(tvb, off, need, tree)
            off = off + need
        else
            tree:add(p691, tvb(off, total - off), "linkstate: not a frame")
                :add_proto_expert_info(LE.bad_frame, "bytes where a frame header must start")
            infos[#infos + 1] = "not a 691 frame"
            break
        end
    end
    set_info(pinfo, (from_server and "S: " or "C: ") .. table.concat(infos, " | "))
    return total
end

p691.dissector = dissect_691

-- --------------------------------------------------------------------------------------------- SMTP

-- Per sender (one direction of one TCP connection): the packet being reassembled, message-content mode.
local senders = {}
-- Per line (frame number and offset), what the first pass found, so later passes show the same.
local results = {}

local function reset_state()
    senders, results = {}, {}
end
psmtp.init = reset_state

local function sender_key(pinfo)
    return tostring(pinfo.src) .. ":" .. pinfo.src_port .. ">" .. tostring(pinfo.dst) .. ":" .. pinfo.dst_port
end

local function peer_key(pinfo)
    return tostring(pinfo.dst) .. ":" .. pinfo.dst_port .. ">" .. tostring(pinfo.src) .. ":" .. pinfo.src_port
end

local function sender(key)
    local st = senders[key]
    if not st then
        st = { active = false, parts = {}, got = 0, frames = {}, content = false }
        senders[key] = st
    end
    return st
end

local function forget(st)
    st.active, st.parts, st.got, st.declared, st.frames = false, {}, 0, nil, {}
end

-- the `{len8}` header once 10 bytes are in: nil + an expert finding when it is bad
local function check_header(st, r)
    if st.declared or st.got < 10 then return true end
    local head = table.concat(st.parts):sub(1, 10)
    local len = head:match("^{(%x%x%x%x%x%x%x%x)}$")
    if not len or len:find("[A-F]") then
        r.experts[#r.experts + 1] = { XE.bad_header, "malformed {len8} header: " .. string.format("%q", head) }
        return false
    end
    local declared = tonumber(len, 16) + 10
    if declared > FRAME_LIMIT + 10 then
        r.experts[#r.experts + 1] = { XE.over_limit, string.format(
            "declared length %d is over the frame limit of %d bytes", declared - 10, FRAME_LIMIT) }
        return false
    end
    st.declared = declared
    r.declared = declared
    return true
end

local function take(st, data, number, r)
    if #data == 0 or data:find("[\r%z]") then
        r.experts[#r.experts + 1] = { XE.bad_data, #data == 0 and "empty chunk" or "CR or NUL inside chunk data" }
        return false
    end
    if st.declared and st.got + #data > st.declared then
        r.experts[#r.experts + 1] = { XE.past_length, string.format(
            "chunk passes the declared length: %d > %d bytes", st.got + #data, st.declared) }
        return false
    end
    st.parts[#st.parts + 1] = data
    st.got = st.got + #data
    st.frames[#st.frames + 1] = number
    if not check_header(st, r) then return false end
    if st.declared and st.got > st.declared then
        r.experts[#r.experts + 1] = { XE.past_length, string.format(
            "chunk passes the declared length: %d > %d bytes", st.got, st.declared) }
        return false
    end
    return true
end

-- One chunk (FIRST/NEXT/LAST/CHUNK) from `st`'s sender: the reassembly of docs/PROTOCOL.md §3.6, and the shapes
-- it refuses as expert findings. Fills `r` (index, received, declared, packet when complete).
local function on_chunk(st, kind, data, number, r)
    if kind == "FIRST" then
        if st.active then
            r.experts[#r.experts + 1] = { XE.first_again, "FIRST CHUNK while a packet of " ..
                tostring(st.declared) .. " bytes is in progress (" .. st.got .. " received)" }
            forget(st)
            return
        end
        forget(st)
        st.active = true
    elseif kind == "NEXT" or kind == "CHUNK" then
        if not st.active then
            local big = #data > MS05_021_SIZE and string.format(
                " (%d bytes: over the %d of the published exploit)", #data, MS05_021_SIZE) or ""
            local what = kind == "CHUNK" and "unmarked CHUNK=" or "NEXT CHUNK="
            r.experts[#r.experts + 1] = { XE.no_first, what .. " with no FIRST CHUNK before it" .. big }
            return
        end
    elseif kind == "LAST" and not st.active then
        if data:sub(1, 1) ~= "{" then
            r.experts[#r.experts + 1] = { XE.last_alone, "LAST CHUNK continues no FIRST CHUNK and is no whole frame" }
            return
        end
        forget(st)
        st.active = true
    end
    if not take(st, data, number, r) then
        forget(st)
        return
    end
    r.index, r.received, r.declared = #st.parts, st.got, st.declared
    if kind == "LAST" then
        if not st.declared or st.got < st.declared then
            r.experts[#r.experts + 1] = { XE.short, string.format("LAST CHUNK ends the packet short: %d of %s bytes",
                st.got, tostring(st.declared)) }
        else
            r.packet = table.concat(st.parts)
            r.frames = st.frames
        end
        forget(st)
    end
end

-- `FIRST CHUNK=data`, `LAST_CHUNK=data`, `CHUNK=data`, `MORE`, `DONE_RESPONSE`: (keyword, chunk kind, data)
local function parse_x2s(rest)
    local eq = rest:find("=", 1, true)
    if eq then
        local word = rest:sub(1, eq - 1):upper():gsub("_", " "):gsub("^%s+", ""):gsub("%s+$", "")
        local kinds = { ["FIRST CHUNK"] = "FIRST", ["NEXT CHUNK"] = "NEXT", ["LAST CHUNK"] = "LAST", CHUNK = "CHUNK" }
        if kinds[word] then return word, kinds[word], rest:sub(eq + 1), eq end
        return word, nil, nil, eq
    end
    local word = rest:upper():gsub("_", " "):gsub("%s+$", "")
    return word, nil, nil, nil
end

local function add_experts(item, tvbr, list)
    for _, e in ipairs(list) do item:add_tvb_expert_info(e[1], tvbr, e[2]) end
end

-- the keywords of the negotiated extensions (docs/PROTOCOL.md §3.11)
local EXTENSIONS = { WINDOW = true, DELTA = true, TREE = true, LIST = true, GET = true, PUSH = true }

-- an X-LINK2STATE command or reply (`rest` after the `X-LINK2STATE ` prefix at line position `at`)
local function dissect_x2s(tvb, pinfo, item, line_off, at, rest, st, key)
    local word, kind, data, eq = parse_x2s(rest)
    local r = results[key]
    if not r then
        r = { experts = {} }
        if kind then on_chunk(st, kind, data, pinfo.number, r) end
        results[key] = r
    end
    local rest_off = line_off + at - 1
    item:add(X.keyword, tvb(rest_off, eq and eq - 1 or #rest), word)
    if not kind then
        if word == "MORE" then
            item:add(X.more, tvb(rest_off, #rest), true)
            return "X-LINK2STATE MORE"
        elseif word == "DONE RESPONSE" then
            item:add(X.done_response, tvb(rest_off, #rest), true)
            return "X-LINK2STATE DONE_RESPONSE"
        elseif EXTENSIONS[word] and eq then -- docs/PROTOCOL.md §3.11
            local value = rest:sub(eq + 1)
            item:add(X.extension, tvb(rest_off, eq - 1), word)
            item:add(X.ext_value, tvb(rest_off + eq, math.max(1, #value)), value)
            if (word == "DELTA" or word == "PUSH") and value:match("^%x+$") then
                item:add(X.digest, tvb(rest_off + eq, #value), value)
            end
            return "X-LINK2STATE " .. word .. "=" .. (#value > 40 and value:sub(1, 40) .. "…" or value)
        end
        item:add_tvb_expert_info(XE.unknown, tvb(rest_off, math.max(1, #rest)), "unknown keyword " .. word)
        return "X-LINK2STATE " .. word .. " (unknown)"
    end
    local data_range = tvb(rest_off + eq, math.max(1, #data))
    item:add(X.chunk_kind, tvb(rest_off, eq - 1), kind)
    item:add(X.chunk_len, data_range, #data)
    item:add(X.chunk_data, data_range, #data > 80 and data:sub(1, 80) .. "…" or data)
    add_experts(item, data_range, r.experts)
    local text = string.format("X-LINK2STATE %s CHUNK %d bytes", kind == "CHUNK" and "(unmarked)" or kind, #data)
    if r.index then
        item:add(X.chunk_index, data_range, r.index):set_generated()
        item:add(X.received, data_range, r.received):set_generated()
        if r.declared then item:add(X.declared, data_range, r.declared):set_generated() end
        text = text .. string.format(" [%d: %d/%s]", r.index, r.received, tostring(r.declared or "?"))
    end
    if #r.experts > 0 then text = text .. " [" .. r.experts[1][2] .. "]" end
    if r.packet then
        local pitem = item:add(X.complete, data_range, true)
        pitem:set_generated()
        item:add(X.chunks, data_range, #r.frames):set_generated()
        local frames = {}
        for i, f in ipairs(r.frames) do frames[i] = tostring(f) end
        item:add(X.in_frames, data_range, table.concat(frames, ", ")):set_generated()
        local ptvb, poff
        if r.index == 1 then
            ptvb, poff = tvb, rest_off + eq
        else
            ptvb = ByteArray.new(r.packet, true):tvb("Reassembled OrgInfo (" .. r.index .. " chunks)")
            poff = 0
        end
        local digest = r.packet:match("^{%x+} ORGINFO (%x+)")
        if digest then item:add(X.digest, data_range, digest) end
        local summary = dissect_orginfo(ptvb, poff, #r.packet, item, "Reassembled OrgInfo packet")
        if r.packet:match("^{%x+} ORGINFO %x+  $") and r.index == 1 then
            item:add(X.opening, data_range, true):set_generated()
        end
        text = text .. " → " .. summary
    end
    return text
end

local function dissect_line(tvb, pinfo, tree, off, len, from_server, st, peer)
    local raw = tvb:raw(off, len)
    local line = raw:gsub("\r?\n$", "")
    local item = tree:add(psmtp, tvb(off, len), line:sub(1, 100))
    item:add(X.line_len, tvb(off, len), len):set_generated()
    if len > MAX_LINE then
        item:add_tvb_expert_info(XE.long_line, tvb(off, len), string.format("line of %d bytes", len))
    end
    local key = pinfo.number .. ":" .. off
    local prefix = from_server and "S: " or "C: "
    if from_server then
        local code, sep, text = line:match("^(%d%d%d)([ %-]?)(.*)$")
        if not code then return prefix .. line:sub(1, 60) end
        item:add(X.reply_code, tvb(off, 3), tonumber(code))
        if #text > 0 then item:add(X.reply_text, tvb(off + 4, #text), text) end
        if code == "354" and peer then peer.content = true end
        if code == "334" and peer then peer.proof = true end
        local upper = text:upper()
        local at
        if upper:sub(1, 13) == "X-LINK2STATE " then
            at = 5 + 13
        elseif upper:match("^DONE[_ ]RESPONSE") or upper:match("^[A-Z_ ]*CHUNK=") or upper == "MORE" then
            at = 5 -- the G35 form, without the X-LINK2STATE prefix
        end
        if at and #line >= at then
            local info = dissect_x2s(tvb, pinfo, item, off, at, line:sub(at), st, key)
            item:set_text(code .. " " .. info)
            return prefix .. code .. " " .. info
        end
        return prefix .. code .. sep .. text:sub(1, 60)
    end
    if st.content then
        item:add(X.content, tvb(off, len), line)
        if line == "." then st.content = false end
        return line == "." and prefix .. "<end of message>" or nil
    end
    if st.proof then -- the line after `334 <guid> <nonce> <proof>`: the client's X-EXPS proof
        st.proof = false
        item:add(X.command, tvb(off, #line), "X-EXPS proof")
        item:add(X.args, tvb(off, #line), line)
        return prefix .. "X-EXPS proof"
    end
    local verb, rest = line:match("^(%S+)%s?(.*)$")
    if not verb then return prefix .. "<empty line>" end
    item:add(X.command, tvb(off, #verb), verb:upper())
    if verb:upper() == "X-LINK2STATE" and #rest > 0 then
        local info = dissect_x2s(tvb, pinfo, item, off, #verb + 2, rest, st, key)
        item:set_text(info)
        return prefix .. info
    end
    if #rest > 0 then item:add(X.args, tvb(off + #verb + 1, #rest), rest) end
    return prefix .. verb:upper() .. (#rest > 0 and " " .. rest:sub(1, 60) or "")
end

local function dissect_smtp(tvb, pinfo, tree)
    pinfo.cols.protocol:set("X-LINK2STATE")
    local from_server = pinfo.src_port == pinfo.match_uint
    local st = sender(sender_key(pinfo))
    local peer = senders[peer_key(pinfo)] or sender(peer_key(pinfo))
    local off, total, infos = 0, tvb:len(), {}
    while off < total do
        local rest = tvb:raw(off, total - off)
        local lf = rest:find("\n", 1, true)
        if not lf then
            if total - off >= NO_LF_LIMIT then
                tree:add(psmtp, tvb(off, total - off), "no LF")
                    :add_proto_expert_info(XE.no_lf, string.format("%d bytes without LF", total - off))
                break
            end
            pinfo.desegment_offset, pinfo.desegment_len = off, DESEGMENT_ONE_MORE_SEGMENT
            break
        end
        local info = dissect_line(tvb, pinfo, tree, off, lf, from_server, st, peer)
        if info then infos[#infos + 1] = info end
        off = off + lf
    end
    if #infos > 4 then infos = { infos[1], infos[2], "… " .. (#infos - 3) .. " more …", infos[#infos] } end
    if #infos > 0 then set_info(pinfo, table.concat(infos, " | ")) end
    return total
end

psmtp.dissector = dissect_smtp

-- --------------------------------------------------------------------------------------------- registration

p691.prefs.ports = Pref.range("TCP ports", "691,6910-6999", "Ports of the routing-group protocol (TCP 691; "
    .. "linkstate's local clusters use 6910+n when 691 cannot be bound)", 65535)
psmtp.prefs.ports = Pref.range("SMTP ports", "25,2525-2599", "Ports of bridgeheads' SMTP virtual servers "
    .. "(25; linkstate's local clusters use 2525+n)", 65535)

local tcp = DissectorTable.get("tcp.port")
local registered = {}

local function register(proto)
    local now = tostring(proto.prefs.ports)
    if registered[proto] then tcp:remove(registered[proto], proto) end
    if now ~= "" then tcp:add(now, proto) end
    registered[proto] = now ~= "" and now or nil
end

p691.prefs_changed = function() register(p691) end
psmtp.prefs_changed = function() register(psmtp) end
register(p691)
register(psmtp)
tcp:add_for_decode_as(p691)
tcp:add_for_decode_as(psmtp)
