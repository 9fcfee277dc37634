"""Known answers for load-time checks of the WebAssembly kernels. The rANS loop: ``rans._kernel_ok`` decodes ``RANS``,
``entropy._values_kernel_ok`` decodes ``VALUES``, and each compares what comes out with the symbols it knows.

Each is ``rans.RansEncoder(lanes).encode`` of its check's inputs (``rans._check_case``, ``entropy._values_check_case``),
stored so that the browser's first decode does not run the Python encoder for them (the two encodes: 5-21 ms, median
7.6, in five fresh Pyodide processes under Node). tests/test_rans.py encodes the inputs again and compares, so the
streams cannot drift from the encoder.
"""

import binascii  # built into CPython and Pyodide, already loaded there: no import cost
from collections.abc import Iterable
import hashlib

import numpy as np


def digest(arrays: Iterable[np.ndarray]) -> str:
    """SHA-256 of integer arrays (the kernels' outputs on a check's inputs, plans), each as its shape and its values in
    int64: float64 integers hash as the same integers whatever their sign of zero."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.asarray(a)
        h.update(repr(a.shape).encode())
        h.update(np.ascontiguousarray(a, np.int64).tobytes())
    return h.hexdigest()


# ``digest``s of what the kernels must reproduce, each made by the NumPy reference on the check's inputs (CheckInts):
# the phase gather's and Winograd's transposed convs (``conv._numpy_convt`` of ``conv.phase_check_cases()`` and of
# ``conv.winograd_check_cases()``), the hyper-decoder's 3x3 layer (``hyper.wino3_check_cases()``: planes, row ranges,
# scale indices), the output layer's pixels (``synthesis.direct_pixels_check_cases()``), the int32 iGDN's channel pairs
# and largest |value| (``synthesis._hidden_numpy`` of ``synthesis.igdn16_check_cases()``), the Winograd plans
# (``winograd._plan_weights`` of ``winograd.plan_check_cases()``) and the F(2x2, 3x3) plans (``wino3._plan_numpy`` of
# ``wino3.plan_check_cases()``). tests/test_decoder_speedups.py makes them again in CPython; the browser's first
# decode then never runs that NumPy code.
PHASE = "f614ee1331d2b33f725d84b74958ff191c5d2bfe0e158131d3092a60e3bb00d5"
WINOGRAD = "fa9c4ee495f3e6f547d636d85c060189588392d617c957eb935a589f367a050c"
WINOGRAD_PLAN = "9f0b6d1357ab5d1228eccb3ce7bb13f2c757161763c1dd72d25e6461edf9e7a5"
WINO3_PLAN = "1d64764f85e6f42e4d9ddca68cb3fff235086f8789001058b37f2e57c890c9a8"
WINO3 = "dcc475acec527f67519853890977d91cb0f10cccf65671d63221fd4c126439f7"
DIRECT_PIXELS = "03a623f3383aba703bd69d5373355f81b5b17a26ba5aac4684c20238ecc8c1a1"
IGDN16 = "dea8c3287e8c5e3b4aecb46f04b7b60fcebe13c6b4a2f6e84ffb8fc7ef4f2185"
# Biases 0, 1 and -1 of ``synthesis.direct_pixels_check_cases()``, from the NumPy conv of each case's a and w
DIRECT_PIXELS_BIASES = ((-11976220.0, -106052218.0, 84350240.0), (-7893622.0, -82432636.0, 73450503.0))

RANS = binascii.a2b_base64(
    "//+DMJ3/kAChjqED//8CAP//fwDFowEAVRX/D2LlR4S55QMAySi0AUn/9AD//1MAvyVMi1nzhwN7qSUAxf6uVjffEQBfToIB//++FjT+TwIuyaEM"
    "nnIzAJ8O0k///70C//91ADSf33yW6TQERf+ZShX/BgCv/gEA//80XCGVrgPvGfsAKaYKAP/9GQCN/gUA1vnsAG8Ihf5Ps8D1C2nO/qa7///PBSi8"
    "j4e0y8Wt///1/9QfdEs8TmDbpf//////AIV2R5b/8JX//+/+H8Mf/gWx8Bd75v//K47//yGe//8Vt///b6D//1VA2f7//ycFqct/osXVRMr/////"
    "PDrfLMvmG/7//5NEl5evM///ZoalNPH/v83//33+rHTvWM4wB8dP/xP+//9PewP/71LTk///LX3P/wit//0YZv79//9C/2H///97NV7++3Za/vf+"
    "//8uO/v/l2zzyREWc7L//6jP//9n6P//9f+p4QnJ///T0GHdpSjPMf//1+/wsjjQbP4Sf8GqYNroxoTDx5MSY3xBj/78911w1liHTv////+W/yRE"
    "Ysu8x4T/qv//////Nao9UXRp2L34/f//kf9S////+5D//2W46piQEOByh1Dfsv//8vd+lrP/rT///0U4fQL//+P+Df7V/i/x/////1X+GYD//38e"
    "+8j///Ux//8vKuct7x4nQ/fUzODUGIeMcHUE6A+nB/7r/u6D8rnOK5eYAcBV/sf////iHZ8JTW+Q6Zf+af5NtuP++oPoshz/4daf261S//+uWP//"
    "//9Dzv//f6e2/6vUov52ruPC7P/LfYCz8RnfWNtr/f4Vkf//FLn//z4lUv+V1mCmlMnz/oH///80cDjjb3RQyf//6f////UWw1HvoBk8pO2+pe7+"
    "//+Fpv//5C7oiSyRp7kNVTvq//8Eif//+9s3yjru7wP/////ttlLm0mplRRmRjFIzjMd/gLMTzd4IMD/Rt//////xOwY/1bfpcjH////mbGOhf//"
    "//+h2P//Pf7GbcVW/////yD+//9PmNbcB9nG/+z/oP5Vr28a9fns0mjD//9e////Jxzi/1H+lLL31oD////uS6n+/////xlFzFn//77/RP/J71z/"
    "t/AsRR3/iMj/////7P3s/yxyKFL//3zn97YvgRs8XXpmNs9Mzf6U/v//GN03gUCg//9NDcAyAP5ysv3/ef481rj/ov5Pw/iAsq3f8tq+//9KN///"
    "p7Vd8Qb//////+XfLyJ3Zev/p/9+8v//jv7T/k+1Jf6KXVr+s37//6T+Kv8Z/+pBEUAJKD4jCR0SYv//l/86a3/lLlf/////wfWlI2L+6P7//2X+"
    "/////27//////4jycGgtfwgs///FiP//V/5U/w9mutj//wFE///tNY3NbcfvnSy6//8zIDaswZx2//////8i07r2oyyNx7tBrT/8/f//0zTZLf//"
    "//9dtnz+4LNPLQcx///tVoH/6/55/8GF//+lW4f////q/Y/lXWNZ9ULKtG5hQeP+Ap1C////M8Kc6vcq8vwUZ7NLmFVgxv////8R+FSrov9nKc9+"
    "5f8Gkfz+hv5LOP//btB/2XRy///34+TERf43hOxfNH/Z/vHO//+N/60jKP///+2I0/0Z/hgu///m3fL9/////5EBBMGH/kj+9f9iUyGAzyrJgM9v"
    "///UbIWUIdRm//99z5v//439J9XGSv//rf7//7b+1f6XyXBK///5L7Od//+0/rj/////////IZlr/3Rc////////VyvL/kb/F0SoWM7REv/y/4L+"
    "/////6+v//8zB53VdmevIOT/zyP//zPynrmr//J1V+t4rFqC//+6r9vIrT9ZfxRnmk7I/u33/f/gw8T+8UOhh9q+XqM4PFXU5P8F41p599fdTd6m"
    "Vmj/////0/5frhLHwP///33ngmlsvgWlC1vgJL2D9eQi/zjteZJzo3fanLLW/tC46VZX+P/////y/8W2//8PD//////xnyLyOP5c////IsNvWv+s"
    "kgLIzWBb9/+hqGj/j+4wrWqy+//fJ8fP/////wkdslD//0C6GALy/tZ1M3lDKfL+qaOgFVOrMd4AAAAAAAAAAAAAAAA="
)

VALUES = binascii.a2b_base64(
    "CAAGAGXnZAHE/foA/v8VAAQAraqw5JQSKf8mAKT/PQG9/wUAtenseLDxa3jSBQ0AHfaJALL/FgCW/v8fMNS7RmMCzACY6o8CMxc2ANf9kAH//6oN"
    "IwQJAAnwDgACAfkEHQAKAFb+ugEUEZYGY+QmAP//B1D9/3gA//8DAHfr5QaL8/AASeS2FrD/eA247ZwB0yRSAJb13W6m6DJcov8nx87x/v+S5mvm"
    "yf+Y5P//K+AhBIf/hAoP4YDpmhn7//P/mv+9/yjsqP865Ovi5zVUALHnj03/////0v+9/f7///8H/pP//f+B8f3/yv8f4P3/HAj9//7/xgqU/xzl"
    "6eP9/2h6/v++/Sf4+f/C8f3/lugc9KD/6f6T/5n/2/3//wVc2gDg6tH//v+69x/+/f9kamIC/v9V/rT/5in9//3/pv/+//7+Ix4dFAfoQ8KT/2hJ"
    "/v/p/8IRKf74/mma//8lZkoJ/f/w/4f2N/Hy/7bkCPTjDv7/h/79/x/nO+C4Al3+XvpK4Jf//v8EAP3//v+/4Etp1nxb4gT/vP+2+vL/U9f//4Fr"
    "/v/+/wsAjv9A5b3///8cen/l7v/26Xvtaiy58P//c/qL88r/+f7y/7b////T+y5kVgPY//n/3v0E9sX/D/ad888GIiEy/vP/cCvXm/v9/v8KZxn/"
    "jHf///7/nRDA/901WO82/uf/5P+n/6v/5v+vJf7//v/E//7/uv/x4DD84v///7X//v9O5hz+BP79/7fxV+YTAHb+kf/z/+UB6/6s/3D/Qev//+Pn"
    "xf39////0P+0hb3gPes+4P7/pneh//796//ijtf9//8+aAdLnv/m////EOntxOaEre+u0hLy1/P0/2D49v/R8nLujf+O//3/Vf/+/5fx//////D/"
    "yv/y+P///f+G/P///f/a//7/2IZi46f/SP/+/7aervz9//3/21ay/zficmuX/tv9ca1d4rAr/v+m/2IFDe6E/f7/4Ppy7T/+1fT14cz/yuKl////"
    "/v/9/5j5qP6E8/7////M/H31qf79/+j/Ffr9//3/E/ow9v7/wv2O3bL/xgRq4VH+fUF6TSxnt/2t5K/x/f/+/zXmgemS/ybu8MFHAg0Z3c5a+wsI"
    "8/2z/zr5sf+H4vv//v/v/50O2f8U+yevQ/v//7jrJ+8o2Zz/r+LH/pb+BPpx+P3//f///zPnyf/0/yL2///e/Ov//f9NkXrgt//LAX3D/v9g/Oj7"
    "efHj/qQduCxE7SyZvf7q/ibzIP8BFYn7Mviw//7//v8eAU/+/v+K9nL//////yD+ozvp/zlI+OmT/xvrgf4K/pTwa/fJ/v//Lv79/8fhk/+u///+"
    "/v9y65QBof/59rz/tv+q/////v/NLGj+F/9TIP3//v/+/8f//v/6////xf+T/wbzJf7eJa3/z/3z/bZA/v9w2N79yP23cQH+H/Vo6v3/O4D9////"
    "ij1a5Or9HAHd+2DozFLl/8X9//9h/krp7P+dBP7/lv/6/oD/oP/+//7//f////jg6v+O8/7/1O5gQ/7/+v/r//rvb+qQ//7/df/seK3/8P3///jy"
    "v/8hHHn+0v8N8vDx4P+Q/9/9SOvVDbOX/v96Bvr9tL6c//7//v+i//7/a/+X7v7/MBj+/2v+Putm70D4//8uAn3+/v/Z/YIyAf4CAv7/P/gUAcL4"
    "1/ynWf7/0/8568Pj/f815HT+s3366yj+odg8/qoGQwDN/yID/P/19hjv+/1I70jlJu8y/v71belwUuT/CfC3//7/muZRvnngkf///+/+KARWbFz/"
    "vv/v/zH2Bxr+/5oZvJaC/pr/+P+Y9fvz//+f/sYGwRA1AP3/SP3g5P7/oKb+////I/6m7Jzz2bgs4MX/Cv/+/wf2lf+oBCnvN/+C/pBYevGF8Kj/"
    "/P+n7fr98f/l6///lP7//yHgG/mn//TrUgOu/7f9G/X+6P3////n/8b/i+DR/6X/TsSv4Yfp1P6e/x1plwsh4P7/v/5SwW549/yU//7//f/KJbr+"
    "VYk+6k/8POR8uX7+kv3m/0gN7v/+/5f/Jz++/4Tlrf/+/1bt/f///67/+uD+/+r98mnhuP7/tuym88VI5v/+/7vi1OEy+Hbs3wAc9t34//9dl1Lp"
    "mAEx+P/////8/0Tup/8U5f7+zv3Eg4LlqfBoHqP/tf/j//7/Iv/9//X/7w2K8Ejt//+Y/lHkkP/9/0Xlqf/MGf//L8L//6roPvT///r/8////wya"
    "1fH8/+8CAvZ95P//AwDMGZHv//84nP3/ieSX6I3z/v9s/zPk/v/w/xT/Avql/6X/gPOl/+///v/+/9ftJOvw///m/v8="
)
