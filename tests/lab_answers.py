"""One recorded wrong answer per lab exercise: what a student might plausibly write, which
the exercise's checks must refuse (tests/test_course.py). Keyed by lab, then by the
exercise cell's nbgrader grade_id; the text replaces what is inside the cell's solution
region. Each comment says the misconception."""

WRONG = {
    "01-ports-and-the-switch": {
        # forgets the source MAC: scapy fills in an interface's own, not the switch's
        "ex1_bind_and_send": 'binding = app1.bind("10.0.0.2", "udp", 5000)\n'
                             'frame = Ether(src="02:aa:bb:cc:dd:ee", dst=PEER) / IP(src="10.0.0.2", dst="10.0.0.9") / UDP(sport=5000, dport=53) / b"hello"',
        # believes the IP check comes before the MAC check
        "ex2_predict": 'predictions = {"a": "spoofed-src-ip", "b": "spoofed-src-ip", "c": "forward"}',
        # changes the address instead of the port
        "ex3_craft": 'crafted = Ether(src=sw.mac, dst=PEER) / IP(src="10.0.0.3", dst="10.0.0.9") / UDP(sport=6001, dport=53)',
    },
    "02-bindings-and-demultiplexing": {
        # thinks a binding holds for both address families
        "ex1_where": 'where = {"f1": "dns", "f2": "no-binding", "f3": "web", "f4": "web"}',
        # binds a free tuple, so nothing is refused
        "ex2_refusal": 'try:\n    web.bind("10.0.0.2", "udp", 5354)\n    refusal = None\n'
                       'except ms.BindError as e:\n    refusal = e.reason',
        # binds ICMP with port 0, as for a port-less protocol
        "ex3_bind": 'dns.bind("10.0.0.2", "icmp", 0)\ndns.bind("10.0.0.2", 253, 0)',
    },
    "03-spoofing-and-the-filter": {
        # a first fragment (MF set, offset 0) carries its ports: it is checked like any frame
        "ex1_structural":
            'structural["malformed"] = bytes(valid)[:30]\n'
            'structural["oversize"] = base / IP(src="10.0.0.2", dst="10.0.0.9") / UDP(sport=5000, dport=53) / Raw(b"x" * 1200)\n'
            'structural["vlan"] = base / Dot1Q(vlan=7) / IP(src="10.0.0.2", dst="10.0.0.9") / UDP(sport=5000, dport=53)\n'
            'structural["fragment"] = base / IP(src="10.0.0.2", dst="10.0.0.9", flags="MF") / UDP(sport=5000, dport=53) / Raw(b"x" * 16)\n'
            'structural["unsupported-header"] = base / IPv6(src="fd00::2", dst="fd00::9", nh=51) / Raw(bytes(16))',
        # takes the other port's port number but not its address: that is spoofed-src-port
        "ex2_spoofing":
            'spoofing["spoofed-src-ip"] = base / IP(src="10.0.0.2", dst="10.0.0.9") / UDP(sport=6000, dport=53)\n'
            'spoofing["spoofed-protocol"] = base / IP(src="10.0.0.2", dst="10.0.0.9") / TCP(sport=5000, dport=80)\n'
            'spoofing["spoofed-src-port"] = base / IP(src="10.0.0.2", dst="10.0.0.9") / UDP(sport=5001, dport=53)',
        # believes the address is checked before the MAC
        "ex3_order": 'first_fault = {"p1": "spoofed-src-ip", "p2": "oversize", "p3": "spoofed-protocol"}',
    },
    "04-isolation": {
        # binds a free tuple on Bob's port and never asks about Alice's
        "ex1_not_yours": 'bob = ms.connect(sock)\nb = bob.port("bob")\ntry:\n'
                         '    b.bind("10.0.0.2", "udp", 5001)\n    refusal = None\n'
                         'except ms.BindError as e:\n    refusal = e.reason\npeek = None',
        # guesses instead of reading the drop log, and fixes the wrong field
        "ex2_diagnose": 'diagnosis = "spoofed-src-ip"\n'
                        'fixed = Ether(src=dave.mac, dst="02:00:00:00:00:09") / IP(src="10.0.0.3", dst="10.0.0.9") / UDP(sport=5353, dport=40000) / b"answer"',
        # thinks a port outlives the process that made it
        "ex3_left": 'left = ["alice", "bob", "carol", "dave"]',
    },
    "05-performance": {
        # the ratio upside down
        "ex1_share": 'base = bench.baseline(256, 0.5)\np2w = bench.port_to_wire(256, 0.5)\nshare = base / p2w',
        # believes a small batch makes the filter cheaper
        "ex2_batch": 'by_batch = {b: bench.port_to_wire(b, 0.3) for b in (1, 16, 256)}\nwhy = "A"',
        # Mpps is millions of frames per second: forgets the million
        "ex3_ns": 'ns_per_frame = 1e9 / result["mpps"]',
        # believes the kernel switch filters less
        "ex4_vale": 'kernel_vs_user = "A"',
    },
    "06-your-own-stack": {
        # answers from the client's port instead of the one it bound
        "ex1_udp": 'return Ether(src=sw.mac, dst=pkt.src) / IP(src=ip.dst, dst=ip.src) / '
                   'UDP(sport=ip[UDP].sport, dport=ip[UDP].sport) / Raw(bytes(ip[UDP].payload))',
        # acknowledges the client's sequence number itself, not the one after it
        "ex2_tcp": 'if t.flags == "S":\n    return Ether(src=sw.mac, dst=pkt.src) / IP(src=ip.dst, dst=ip.src) / '
                   'TCP(sport=t.dport, dport=t.sport, flags="SA", seq=1000, ack=t.seq)\nreturn None',
    },
    "07-stacks-side-by-side": {
        # replies to the port it received on, from the sender's port
        "ex1_reply": 'return bytes(Ether(src=sw.mac, dst=pkt.src) / IP(src=pkt[IP].dst, dst=pkt[IP].src) /\n'
                     '             UDP(sport=pkt[UDP].sport, dport=pkt[UDP].dport) / Raw(bytes(pkt[UDP].payload)))',
        # blames the address, without reading the drop log
        "ex2_diagnose": 'culprit, diagnosis = "pystack", "spoofed-src-ip"',
    },
}
