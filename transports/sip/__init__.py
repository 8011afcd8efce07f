"""The SIP trunk transport: the agent as a SIP endpoint (G.711 RTP, RFC 4733 DTMF, hold, REFER).

Built on ``aiosipua`` (signalling) and ``aiortp`` (media); :mod:`transports.sip.contracts`
says what the parts promise each other.
"""
