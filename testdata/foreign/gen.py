#!/usr/bin/env python3
"""Labelled Logpush-style traffic made apart from internal/traffic.

anomalyd's own generator was written with the features that catch its
bots; this one was written without looking at it, with other sites (travel,
forum, news, a SaaS app), other paths and other bots, so that `replay
backtest` can be tried on traffic the defaults were not chosen on.

    python3 gen.py SEED history h.jsonl [rich]  # 3 hours, 3% unlabelled bots
    python3 gen.py SEED live l.jsonl [rich]     # 20 minutes, labelled
    replay backtest -history h.jsonl -traffic l.jsonl

Live traffic: about 1,200 people, three programs each site wants (a search
crawler, an uptime monitor, a feed reader: the same addresses as in the
history, labelled human), five bots of each of nine kinds, and two
campaigns of 250 residential addresses (scraping, logins). With "rich",
6% of the people use the site's native app (it polls an API endpoint at
a steady interval), 6% share an office's address with others, and 3% are
power users with sessions of 40 to 150 pages. Python's standard library
only.
"""
import json, random, sys, math, hashlib

def lognorm(rng, med, s): return med * math.exp(rng.gauss(0, s))

CHROME = ["Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%d.0.0.0 Safari/537.36",
          "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%d.0.0.0 Safari/537.36",
          "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%d.0.0.0 Mobile Safari/537.36"]
SAFARI = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_%d like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.%d Mobile/15E148 Safari/604.1"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:%d.0) Gecko/20100101 Firefox/%d.0"

def browser_ua(rng):
    x = rng.random()
    if x < 0.55: return rng.choice(CHROME) % rng.randint(128, 133)
    if x < 0.85: v = rng.randint(0, 3); return SAFARI % (v, v)
    v = rng.randint(128, 134); return FIREFOX % (v, v)

class Site:
    def __init__(self, rng, name, kind):
        self.name, self.kind = name, kind
        h = hashlib.md5(name.encode()).hexdigest()[:8]
        self.assets = ["/static/app.%s.js" % h, "/static/vendor.%s.js" % h, "/static/main.%s.css" % h,
                       "/fonts/inter.woff2", "/img/logo.svg"]
        if kind == "travel":
            self.pages = ["/", "/deals", "/destinations"] + ["/hotels/%d" % rng.randint(1000, 99999) for _ in range(400)] + \
                         ["/destinations/%s" % c for c in ["paris", "rome", "tokyo", "lima", "oslo", "cairo", "perth", "quito"]]
            self.forms = ["/booking/hold", "/booking/pay"]
            self.api = ["/api/v2/availability", "/api/v2/prices"]
        elif kind == "forum":
            self.pages = ["/", "/latest", "/top", "/categories"] + ["/t/topic-%d/%d" % (i, rng.randint(10000, 99999)) for i in range(600)] + \
                         ["/u/user%d" % i for i in range(100)]
            self.forms = ["/posts", "/session"]
            self.api = ["/latest.json", "/notifications.json"]
        elif kind == "news":
            self.pages = ["/", "/world", "/sport", "/business", "/culture"] + \
                         ["/2026/12/%02d/story-%d.html" % (rng.randint(1, 7), i) for i in range(500)]
            self.forms = ["/comments", "/newsletter/subscribe"]
            self.api = ["/feeds/latest.rss", "/api/liveblog"]
        else:  # saas
            self.pages = ["/", "/pricing", "/docs", "/login", "/app/dashboard", "/app/reports", "/app/settings"] + \
                         ["/docs/guide-%d" % i for i in range(150)]
            self.forms = ["/login", "/app/reports/export"]
            self.api = ["/api/v1/metrics", "/api/v1/events", "/api/v1/user"]
        self.images = ["/media/%s.webp" % hashlib.md5((name + str(i)).encode()).hexdigest()[:10] for i in range(300)]

    def popular(self, rng):
        # Zipf-ish over pages
        i = int(len(self.pages) * (rng.random() ** 3))
        return self.pages[min(i, len(self.pages) - 1)]

class Out:
    def __init__(self, rng):
        self.rows, self.rng = [], rng
    def emit(self, t, site, ip, method, path, query, ua, ref, status, label, asn, country):
        uri = path + ("?" + query if query else "")
        self.rows.append((t, {"EdgeStartTimestamp": int(t * 1e9), "ZoneName": site.name, "ClientRequestHost": site.name,
            "ClientIP": ip, "ClientRequestMethod": method, "ClientRequestPath": path, "ClientRequestURI": uri,
            "ClientRequestUserAgent": ua, "ClientRequestReferer": ref, "EdgeResponseStatus": status,
            "ClientASN": asn, "ClientCountry": country, "RayID": "%016x" % self.rng.getrandbits(64), "label": label}))

def rand_ip(rng):
    if rng.random() < 0.15:
        return "2a02:%x:%x:%x::%x" % (rng.getrandbits(16), rng.getrandbits(16), rng.getrandbits(16), rng.getrandbits(16))
    return "%d.%d.%d.%d" % (rng.choice([24, 71, 82, 92, 109, 151, 176, 188, 201]), rng.randint(0, 255), rng.randint(0, 255), rng.randint(1, 254))

DC_ASNS = [16509, 14061, 24940, 16276, 63949]
RES_ASNS = [7922, 3320, 5089, 3215, 12322, 701, 2856, 6830]

def human(rng, out, site, t0, t_end, ip=None, pages=None, think=25):
    label = "human"
    ua = browser_ua(rng); ip = ip or rand_ip(rng); asn = rng.choice(RES_ASNS); cc = rng.choice(["us", "gb", "de", "fr", "br", "in", "jp"])
    t = t0
    ref = rng.choice(["https://www.google.com/", "https://www.bing.com/", "", "https://t.co/", "https://news.ycombinator.com/", ""])
    pages = pages or max(1, int(lognorm(rng, 4, 0.8)))
    cached = rng.random() < 0.3
    for p in range(pages):
        if t > t_end: return
        if p == 0 and rng.random() < 0.5: path = site.popular(rng)
        elif site.kind == "saas" and p > 0 and rng.random() < 0.5: path = rng.choice(["/app/dashboard", "/app/reports", "/app/settings"])
        else: path = site.popular(rng)
        status = 200 if rng.random() > 0.02 else 404
        q = ""
        if path in ("/", "/deals") and site.kind == "travel" and rng.random() < 0.4:
            path = "/search"; q = "from=%s&to=%s&d=2026-12-%02d" % (rng.choice("ABCDEFG"), rng.choice("HIJKLM"), rng.randint(10, 30))
        out.emit(t, site, ip, "GET", path, q, ua, ref, status, label, asn, cc)
        page = "https://%s%s" % (site.name, path)
        ta = t + 0.05
        if not cached or p == 0:
            for a in site.assets:
                if cached and rng.random() < 0.8: continue
                ta += rng.uniform(0.01, 0.15)
                out.emit(ta, site, ip, "GET", a, "", ua, page, 200, label, asn, cc)
        for _ in range(rng.randint(0, 6)):
            ta += rng.uniform(0.02, 0.3)
            out.emit(ta, site, ip, "GET", rng.choice(site.images), "", ua, page, 200, label, asn, cc)
        if rng.random() < 0.4:
            ta += rng.uniform(0.1, 1.0)
            out.emit(ta, site, ip, "GET", rng.choice(site.api), "", ua, page, 200, label, asn, cc)
        if rng.random() < 0.05:
            f = rng.choice(site.forms)
            ta += lognorm(rng, 20, 0.5)
            st = 200 if rng.random() < 0.8 else rng.choice([401, 422, 403])
            out.emit(ta, site, ip, "POST", f, "", ua, page, st, label, asn, cc)
        ref = page
        t = ta + lognorm(rng, think, 1.0)

APPS = {"travel": "AcmeTrips/5.2.1 (iPhone; iOS 18.1; Scale/3.00)", "forum": "DevsTalk/2.14 (Android 14; Pixel 8)",
        "news": "CityDaily/8.0.3 CFNetwork/1568.100.1 Darwin/24.0.0", "saas": "MetricsApp/3.3.0 okhttp/4.12.0"}

def app_user(rng, out, site, t0, t_end):
    # a person in the site's native app: it polls an endpoint at a steady
    # interval, without a referer or static files, and now and then opens
    # an item through the API
    ip = rand_ip(rng); asn = rng.choice(RES_ASNS); ua = APPS[site.kind]
    every = rng.choice([15, 30, 60]); t = t0; end = min(t_end, t0 + rng.uniform(120, 1500))
    while t < end:
        out.emit(t, site, ip, "GET", site.api[-1], "", ua, "", 200, "human", asn, "us")
        if rng.random() < 0.3:
            out.emit(t + rng.uniform(1, 5), site, ip, "GET", site.api[0], "id=%d" % rng.randint(1, 5000), ua, "", 200, "human", asn, "us")
        t += every + rng.uniform(-0.5, 0.5)

def wanted(rng, out, site, t0, t_end, k):
    # a search crawler that names itself, an uptime monitor, a feed reader;
    # each keeps its address from the history to the live traffic
    fixed = random.Random(site.name + str(k))
    if k == 0:
        ua = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"; ip = "66.249.%d.%d" % (fixed.randint(64, 95), fixed.randint(1, 254))
        t = t0
        while t < t_end:
            out.emit(t, site, ip, "GET", site.popular(rng), "", ua, "", 200, "human", 15169, "us"); t += lognorm(rng, 8, 0.7)
    elif k == 1:
        ua = "UptimeRobot/2.0 (http://www.uptimerobot.com/)"; ip = rand_ip(fixed); t = t0
        while t < t_end:
            out.emit(t, site, ip, "HEAD", "/", "", ua, "", 200, "human", 16276, "us"); t += 60 + rng.uniform(-1, 1)
    else:
        ua = "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 12 subscribers)"; ip = rand_ip(fixed); t = t0
        while t < t_end:
            out.emit(t, site, ip, "GET", site.api[0], "", ua, "", 200, "human", 16509, "us"); t += 300 + rng.uniform(-20, 20)

WORDLIST = ["/.env", "/.git/config", "/wp-login.php", "/wp-admin/", "/admin", "/administrator/", "/phpmyadmin/", "/backup.zip",
            "/db.sql", "/config.php.bak", "/server-status", "/.aws/credentials", "/actuator/env", "/api/swagger.json", "/console",
            "/cgi-bin/test.cgi", "/.DS_Store", "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php", "/solr/admin", "/jenkins/login",
            "/owa/", "/remote/login", "/xmlrpc.php", "/debug/default/view", "/.svn/entries", "/web.config", "/id_rsa", "/dump.tar.gz",
            "/old/", "/test.php", "/info.php", "/shell.php", "/uploads/", "/.htaccess", "/composer.json", "/package.json", "/Dockerfile",
            "/docker-compose.yml", "/.well-known/security.txt", "/robots.txt", "/sitemap.xml", "/api/v1/users", "/graphql", "/login.action",
            "/struts2-showcase/", "/manager/html", "/hudson", "/zabbix/", "/nagios/", "/cpanel", "/webmail", "/exchange", "/autodiscover/autodiscover.xml"]

def bot(rng, out, site, kind, t0, t_end):
    label = kind  # the history's labels are dropped
    ip = rand_ip(rng); asn = rng.choice(DC_ASNS + RES_ASNS[:2]); cc = rng.choice(["us", "nl", "sg", "ru", "cn", "de"])
    t = t0
    if kind == "dir-buster":
        ua = rng.choice(["Mozilla/5.0 (compatible; Nmap Scripting Engine)", "gobuster/3.6", "Fuzz Faster U Fool v2.1.0", browser_ua(rng), "Mozilla/5.0 (X11; Linux x86_64)"])
        words = rng.sample(WORDLIST, rng.randint(25, len(WORDLIST)))
        for w in words:
            st = 404
            if w in ("/robots.txt", "/sitemap.xml"): st = 200
            elif rng.random() < 0.15: st = 403
            out.emit(t, site, ip, "GET", w, "", ua, "", st, label, asn, cc)
            t += lognorm(rng, 0.3, 0.8)
            if rng.random() < 0.05: t += rng.uniform(5, 40)
            if t > t_end: return
    elif kind == "seo-scraper":
        ua = rng.choice(["python-httpx/0.27.0", "Mozilla/5.0 (compatible; SemrushBot/7~bl)", "Scrapy/2.11 (+https://scrapy.org)", "node-fetch/1.0"])
        while t < t_end:
            out.emit(t, site, ip, "GET", rng.choice(site.pages), "", ua, "", 200 if rng.random() > 0.03 else 404, label, asn, cc)
            t += lognorm(rng, 1.5, 0.6)
    elif kind == "stealth-scraper":
        ua = browser_ua(rng); ref = "https://%s/" % site.name
        while t < t_end:
            p = rng.choice(site.pages)
            out.emit(t, site, ip, "GET", p, "", ua, ref, 200, label, asn, cc)
            ref = "https://%s%s" % (site.name, p)
            t += lognorm(rng, 4, 0.5)
    elif kind == "login-bruteforce":
        ua = rng.choice([browser_ua(rng), "python-requests/2.32.3", "okhttp/4.12.0"]); lp = site.forms[1] if site.kind == "forum" else "/login"
        while t < t_end:
            out.emit(t, site, ip, "POST", lp, "", ua, "https://%s%s" % (site.name, lp), 401 if rng.random() < 0.97 else 200, label, asn, cc)
            t += lognorm(rng, 2, 0.5)
    elif kind == "api-harvester":
        ua = rng.choice(["Go-http-client/2.0", "axios/1.7.2", "Java/17.0.2"]); page = 1
        while t < t_end:
            out.emit(t, site, ip, "GET", site.api[0], "page=%d&per_page=100" % page, ua, "", 200, label, asn, cc)
            page += 1; t += lognorm(rng, 0.8, 0.4)
    elif kind == "comment-spam":
        ua = browser_ua(rng)
        while t < t_end:
            p = rng.choice(site.pages)
            out.emit(t, site, ip, "GET", p, "", ua, "", 200, label, asn, cc)
            t += lognorm(rng, 3, 0.5)
            out.emit(t, site, ip, "POST", site.forms[0], "", ua, "https://%s%s" % (site.name, p), rng.choice([201, 403, 429, 201]), label, asn, cc)
            t += lognorm(rng, 20, 0.6)
    elif kind == "fare-monitor":
        ua = rng.choice([browser_ua(rng), "curl/8.5.0"]); urls = [rng.choice(site.pages) for _ in range(rng.randint(3, 8))]
        while t < t_end:
            for u in urls:
                out.emit(t, site, ip, "GET", u, "", ua, "", 200, label, asn, cc); t += lognorm(rng, 1, 0.3)
            t += rng.choice([60, 120, 180])
    elif kind == "headless-renderer":
        ua = rng.choice(["Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36", browser_ua(rng)])
        ref = ""
        while t < t_end:
            p = rng.choice(site.pages)
            out.emit(t, site, ip, "GET", p, "", ua, ref, 200, label, asn, cc)
            page = "https://%s%s" % (site.name, p); ta = t
            for a in site.assets:
                ta += rng.uniform(0.005, 0.05); out.emit(ta, site, ip, "GET", a, "", ua, page, 200, label, asn, cc)
            ref = page; t = ta + lognorm(rng, 1.2, 0.4)
    elif kind == "cart-hoarder":
        ua = browser_ua(rng)
        while t < t_end:
            p = rng.choice(site.pages[:50])
            out.emit(t, site, ip, "GET", p, "", ua, "https://%s/" % site.name, 200, label, asn, cc); t += lognorm(rng, 0.7, 0.3)
            out.emit(t, site, ip, "POST", site.forms[0], "", ua, "https://%s%s" % (site.name, p), rng.choice([200, 200, 409]), label, asn, cc); t += lognorm(rng, 2, 0.5)

def distributed(rng, out, site, kind, t0, t_end, n):
    ua_pool = [browser_ua(rng) for _ in range(5)]
    for _ in range(n):
        ip = rand_ip(rng); t = rng.uniform(t0, t_end - 60); ua = rng.choice(ua_pool)
        if kind == "distributed-scrape":
            for _ in range(rng.randint(2, 6)):
                out.emit(t, site, ip, "GET", rng.choice(site.pages), "", ua, "", 200, kind, rng.choice(RES_ASNS), "us"); t += lognorm(rng, 3, 0.5)
        else:
            lp = "/login" if site.kind == "saas" else site.forms[1]
            out.emit(t, site, ip, "GET", lp if site.kind == "saas" else "/", "", ua, "", 200, kind, rng.choice(RES_ASNS), "us"); t += lognorm(rng, 1, 0.3)
            for _ in range(rng.randint(1, 3)):
                out.emit(t, site, ip, "POST", lp, "", ua, "https://%s%s" % (site.name, lp), 401, kind, rng.choice(RES_ASNS), "us"); t += lognorm(rng, 2, 0.5)

BOTS = ["dir-buster", "seo-scraper", "stealth-scraper", "login-bruteforce", "api-harvester", "comment-spam", "fare-monitor", "headless-renderer", "cart-hoarder"]

def main():
    seed, phase, out_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    rich = len(sys.argv) > 4 and sys.argv[4] == "rich"
    rng = random.Random(seed * 7919 + (1 if phase == "live" else 0))
    srng = random.Random(seed)
    sites = [Site(srng, "trips.acme.test", "travel"), Site(srng, "talk.devs.test", "forum"), Site(srng, "daily.city.test", "news"), Site(srng, "app.metrics.test", "saas")]
    T0 = 1796000000.0 + seed * 100000
    if phase == "history": start, dur, humans = T0, 3 * 3600, 9000
    else: start, dur, humans = T0 + 3 * 3600, 20 * 60, 1200
    out = Out(rng)
    weights = [0.3, 0.25, 0.3, 0.15]
    offices = {s.name: [rand_ip(random.Random(s.name + "office" + str(i))) for i in range(3)] for s in sites}
    for _ in range(humans):
        s = rng.choices(sites, weights)[0]
        t = rng.uniform(start - 600, start + dur)
        if not rich:
            human(rng, out, s, t, start + dur)
            continue
        x = rng.random()
        if x < 0.06:
            app_user(rng, out, s, t, start + dur)
        elif x < 0.12:  # behind an office's or a carrier's address, with others
            human(rng, out, s, t, start + dur, ip=rng.choice(offices[s.name]))
        elif x < 0.15:  # a power user: a long session, quick between pages
            human(rng, out, s, t, start + dur, pages=rng.randint(40, 150), think=8)
        else:
            human(rng, out, s, t, start + dur)
    for s in sites:
        for k in range(3): wanted(rng, out, s, start + rng.uniform(0, 60), start + dur, k)
    if phase == "history":
        for _ in range(int(humans * 0.03)):
            s = rng.choice(sites); t = rng.uniform(start, start + dur)
            bot(rng, out, s, rng.choice(BOTS), t, min(start + dur, t + rng.uniform(300, 1800)))
    else:
        for k in BOTS:
            for i in range(5):
                s = sites[(i + BOTS.index(k)) % 4]
                if k == "cart-hoarder": s = sites[0]
                t = rng.uniform(start, start + dur - 300)
                bot(rng, out, s, k, t, start + dur)
        distributed(rng, out, sites[0], "distributed-scrape", start, start + dur, 250)
        distributed(rng, out, sites[3], "distributed-login", start, start + dur, 250)
    out.rows.sort(key=lambda r: r[0])
    with open(out_path, "w") as f:
        for t, r in out.rows:
            if t < start or t >= start + dur: continue
            if phase == "history": r.pop("label")
            f.write(json.dumps(r, separators=(",", ":")) + "\n")

main()
