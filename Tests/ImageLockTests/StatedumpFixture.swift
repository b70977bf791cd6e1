// A real brick statedump, captured from the test bed (scripts/gluster-testbed, GlusterFS 10.3)
// with: a gfapi client under `unshare --uts` (hostname apihost) holding a WRITE lock with lk-owner
// "myhost:1234" on /a.img; through a FUSE mount (made on host "vm"), python3 fcntl.lockf: a READ
// lock on /b.img plus a blocked WRITE request on it, and two ranges on "/dir with space.img".
// Memory and mempool sections in the middle are cut; everything else is as written.
let realStatedump = #"""
DUMP-START-TIME: 2026-11-28 03:50:09.758032 +0000

[mallinfo]
mallinfo_arena=2387968
mallinfo_ordblks=60
mallinfo_smblks=19
mallinfo_hblks=8
mallinfo_hblkhd=2105344
mallinfo_usmblks=0
mallinfo_fsmblks=1136
mallinfo_uordblks=1192464
mallinfo_fordblks=1195504
mallinfo_keepcost=1296

GlusterFS 4.x v1.program-number=1298437
GlusterFS 4.x v1.program-version=400
GlusterFS 4.x v1.latency.OPEN=AVG:106043.000000 CNT:1 TOTAL:106043 MIN:106043 MAX:106043
GlusterFS 4.x v1.latency.CREATE=AVG:754291.000000 CNT:1 TOTAL:754291 MIN:754291 MAX:754291
GlusterFS 4.x v1.latency.LK=AVG:55543.500000 CNT:2 TOTAL:111087 MIN:47712 MAX:63375
GlusterFS 4.x v1.latency.LOOKUP=AVG:128566.500000 CNT:6 TOTAL:771399 MIN:71767 MAX:192437

[GlusterFS 3.3]
GlusterFS 3.3.program-number=1298437
GlusterFS 3.3.program-version=330

[GF-DUMP]
GF-DUMP.program-number=123451501
GF-DUMP.program-version=1

[GlusterFS Handshake]
GlusterFS Handshake.program-number=14398633
GlusterFS Handshake.program-version=2
conn.0.bound_xl./tmp/locksmith-gluster-dev/bricks/b1.dentry_hashsize=14057
conn.0.bound_xl./tmp/locksmith-gluster-dev/bricks/b1.inode_hashsize=65536
conn.0.bound_xl./tmp/locksmith-gluster-dev/bricks/b1.name=/tmp/locksmith-gluster-dev/bricks/b1/inode
conn.0.bound_xl./tmp/locksmith-gluster-dev/bricks/b1.lru_limit=16384
conn.0.bound_xl./tmp/locksmith-gluster-dev/bricks/b1.active_size=4
conn.0.bound_xl./tmp/locksmith-gluster-dev/bricks/b1.lru_size=0
conn.0.bound_xl./tmp/locksmith-gluster-dev/bricks/b1.purge_size=0
conn.0.bound_xl./tmp/locksmith-gluster-dev/bricks/b1.invalidate_size=0

[conn.0.bound_xl./tmp/locksmith-gluster-dev/bricks/b1.active.1]
gfid=65cb6055-8b2f-46eb-acc2-e7a2a2400790
nlookup=1
fd-count=1
active-fd-count=1
ref=2
invalidate-sent=0
ia_type=1
ref_by_xl:.lsvol-locks=1
ref_by_xl:.lsvol-server=1

[xlator.features.locks.lsvol-locks.inode]
path=/dir with space.img
mandatory=0
posixlk-count=2
posixlk.posixlk[0](ACTIVE)=type=WRITE, whence=0, start=0, len=10, pid = 29685, owner=981cce39f7c6cad2, client=0x7fcfb40085d8, connection-id=CTX_ID:565b17f0-07d3-47b3-affe-bd6246c8c001-GRAPH_ID:0-PID:29377-HOST:vm-PC_NAME:lsvol-client-0-RECON_NO:-0, granted at 2026-11-28 03:50:08 +0000
posixlk.posixlk[1](ACTIVE)=type=READ, whence=0, start=20, len=10, pid = 29685, owner=981cce39f7c6cad2, client=0x7fcfb40085d8, connection-id=CTX_ID:565b17f0-07d3-47b3-affe-bd6246c8c001-GRAPH_ID:0-PID:29377-HOST:vm-PC_NAME:lsvol-client-0-RECON_NO:-0, granted at 2026-11-28 03:50:08 +0000
removes_pending=0

[conn.0.bound_xl./tmp/locksmith-gluster-dev/bricks/b1.active.2]
gfid=d05bc7c4-32b9-463b-b54a-8aa666adf979
nlookup=2
fd-count=2
active-fd-count=2
ref=3
invalidate-sent=0
ia_type=1
ref_by_xl:.lsvol-locks=1
ref_by_xl:.lsvol-server=2

[xlator.features.locks.lsvol-locks.inode]
path=/b.img
mandatory=0
posixlk-count=2
posixlk.posixlk[0](ACTIVE)=type=READ, whence=0, start=0, len=0, pid = 29396, owner=473bc5b3beaae80e, client=0x7fcfb40085d8, connection-id=CTX_ID:565b17f0-07d3-47b3-affe-bd6246c8c001-GRAPH_ID:0-PID:29377-HOST:vm-PC_NAME:lsvol-client-0-RECON_NO:-0, granted at 2026-11-28 03:49:58 +0000
posixlk.posixlk[1](BLOCKED)=type=WRITE, whence=0, start=4096, len=100, pid = 29683, owner=24cdffa337fc10ed, client=0x7fcfb40085d8, connection-id=CTX_ID:565b17f0-07d3-47b3-affe-bd6246c8c001-GRAPH_ID:0-PID:29377-HOST:vm-PC_NAME:lsvol-client-0-RECON_NO:-0, blocked at 2026-11-28 03:50:08 +0000
removes_pending=0

[conn.0.bound_xl./tmp/locksmith-gluster-dev/bricks/b1.active.3]
gfid=d178fb14-026f-4196-b734-809381bc889e
nlookup=1
fd-count=1
active-fd-count=1
ref=2
invalidate-sent=0
ia_type=1
ref_by_xl:.lsvol-locks=1
ref_by_xl:.lsvol-server=1

[xlator.features.locks.lsvol-locks.inode]
path=/a.img
mandatory=0
posixlk-count=1
posixlk.posixlk[0](ACTIVE)=type=WRITE, whence=0, start=0, len=0, pid = 29259, owner=6d79686f73743a31-323334, client=0x7fcfac0527c8, connection-id=CTX_ID:3045a18a-5fc6-4569-9072-bd9149741b21-GRAPH_ID:0-PID:29259-HOST:apihost-PC_NAME:lsvol-client-0-RECON_NO:-0, granted at 2026-11-28 03:49:58 +0000
removes_pending=0

[conn.0.bound_xl./tmp/locksmith-gluster-dev/bricks/b1.active.4]
gfid=00000000-0000-0000-0000-000000000001
nlookup=0
fd-count=0
active-fd-count=0
ref=1
invalidate-sent=0
ia_type=2
ref_by_xl:.lsvol-io-threads=1
conn.1.id=CTX_ID:3045a18a-5fc6-4569-9072-bd9149741b21-GRAPH_ID:0-PID:29259-HOST:apihost-PC_NAME:lsvol-client-0-RECON_NO:-0
conn.1.ref=1
conn.1.bound_xl=/tmp/locksmith-gluster-dev/bricks/b1

[/tmp/locksmith-gluster-dev/bricks/b1.latency]

[debug/io-stats./tmp/locksmith-gluster-dev/bricks/b1 - Memory usage]
num_types=111

[debug/io-stats./tmp/locksmith-gluster-dev/bricks/b1 - usage-type gf_common_mt_strdup memusage]
num_allocs=7

[debug/io-stats./tmp/locksmith-gluster-dev/bricks/b1 - usage-type gf_common_mt_dnscache memusage]
num_allocs=1

[debug/io-stats./tmp/locksmith-gluster-dev/bricks/b1 - usage-type gf_io_stats_mt_ios_conf memusage]
num_allocs=1

[debug/io-stats./tmp/locksmith-gluster-dev/bricks/b1 - usage-type gf_io_stats_mt_ios_fd memusage]
num_allocs=4

[debug/io-stats./tmp/locksmith-gluster-dev/bricks/b1 - usage-type gf_io_stats_mt_ios_stat memusage]
num_allocs=13

base_path_length=36
max_read=0
max_write=0

DUMP-END-TIME: 2026-11-28 03:50:09.759125 +0000
"""#
