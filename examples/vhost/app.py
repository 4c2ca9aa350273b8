"""Virtual hosts ("Mounting With Virtual Host"): curl -H 'Host: www.site1.com' http://127.0.0.1:5000/"""
import skitai

skitai.vmount("www.site1.com", "/", "site1.py")
skitai.vmount("www.site2.com .site2.org", "/", "site2.py")
skitai.mount("/", "site_default.py")              # any other host name
skitai.run(address="127.0.0.1", port=5000)
