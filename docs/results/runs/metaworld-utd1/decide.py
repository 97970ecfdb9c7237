import csv,sys
score={}
for c in "ABC":
    v=[]
    for s in (101,102):
        ev={int(r["env_steps"]):float(r["eval_success"]) for r in csv.DictReader(open(f"/work/evid5/mw/pilot/{c}-s{s}/metrics.csv"))}
        v += [ev[35000], ev[40000]]
    score[c]=sum(v)/len(v)
best=max(score.values())
pick=[c for c in "ABC" if score[c] >= best-0.05][0]  # cheapest within 0.05 of the best
print(" ".join(f"{c}={score[c]:.3f}" for c in "ABC"), "pick", pick, file=sys.stderr)
print({"A":"--update-every 2 --critic-updates 1","B":"--update-every 1 --critic-updates 1","C":"--update-every 1 --critic-updates 2"}[pick])
