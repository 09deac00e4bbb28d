"""The divisions the catalogue page offers for "near": the demo province's (Hubei, 湖北省) prefectures and
Wuhan's districts, GB/T 2260 codes with a centroid each.

There is no geocoder (OneCard runs without the internet), so "near an address" is honest about what it
knows: the citizen picks their district or city from this list, or lets the browser tell their position
("near me"), and entries with coordinates are sorted by the great-circle distance from that point. The
centroids are rounded to about a kilometre; a province deploying OneCard ships its own list here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

EARTH_RADIUS_KM: Final = 6371.0


@dataclass(frozen=True)
class Division:
    code: str  # GB/T 2260, six digits
    name: str  # the official Chinese name
    name_en: str
    latitude: float
    longitude: float

    @property
    def parent_code(self) -> str | None:
        """The code of the division above (a district's city, a city's province); None for a province."""
        if self.code.endswith("0000"):
            return None
        if self.code.endswith("00"):
            return self.code[:2] + "0000"
        return self.code[:4] + "00"


DIVISIONS: Final[tuple[Division, ...]] = (
    Division("420000", "湖北省", "Hubei Province", 30.59, 114.30),
    Division("420100", "武汉市", "Wuhan", 30.59, 114.30),
    Division("420102", "江岸区", "Jiang'an District", 30.60, 114.31),
    Division("420103", "江汉区", "Jianghan District", 30.60, 114.27),
    Division("420104", "硚口区", "Qiaokou District", 30.58, 114.22),
    Division("420105", "汉阳区", "Hanyang District", 30.55, 114.22),
    Division("420106", "武昌区", "Wuchang District", 30.55, 114.32),
    Division("420107", "青山区", "Qingshan District", 30.63, 114.39),
    Division("420111", "洪山区", "Hongshan District", 30.50, 114.34),
    Division("420112", "东西湖区", "Dongxihu District", 30.62, 114.14),
    Division("420113", "汉南区", "Hannan District", 30.31, 114.08),
    Division("420114", "蔡甸区", "Caidian District", 30.58, 114.03),
    Division("420115", "江夏区", "Jiangxia District", 30.38, 114.32),
    Division("420116", "黄陂区", "Huangpi District", 30.88, 114.38),
    Division("420117", "新洲区", "Xinzhou District", 30.84, 114.80),
    Division("420200", "黄石市", "Huangshi", 30.20, 115.04),
    Division("420300", "十堰市", "Shiyan", 32.63, 110.80),
    Division("420500", "宜昌市", "Yichang", 30.69, 111.29),
    Division("420600", "襄阳市", "Xiangyang", 32.01, 112.12),
    Division("420700", "鄂州市", "Ezhou", 30.39, 114.89),
    Division("420800", "荆门市", "Jingmen", 31.04, 112.20),
    Division("420900", "孝感市", "Xiaogan", 30.92, 113.92),
    Division("421000", "荆州市", "Jingzhou", 30.33, 112.24),
    Division("421100", "黄冈市", "Huanggang", 30.45, 114.87),
    Division("421200", "咸宁市", "Xianning", 29.84, 114.32),
    Division("421300", "随州市", "Suizhou", 31.69, 113.38),
    Division("422800", "恩施土家族苗族自治州", "Enshi Prefecture", 30.27, 109.49),
)
_BY_CODE: Final = {division.code: division for division in DIVISIONS}


def find_division(code: str) -> Division | None:
    return _BY_CODE.get(code) if isinstance(code, str) else None


def region_prefix(code: str) -> str:
    """What every code inside the division starts with: ``42`` for a province, ``4201`` for a city."""
    if code.endswith("0000"):
        return code[:2]
    if code.endswith("00"):
        return code[:4]
    return code


def region_path(code: str) -> tuple[Division, ...]:
    """The known divisions from the province down to ``code`` (for a district: province, city, district)."""
    path = []
    current: str | None = code
    while current is not None:
        division = _BY_CODE.get(current)
        if division is None:
            break
        path.append(division)
        current = division.parent_code
    return tuple(reversed(path))


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """The great-circle (haversine) distance between two points, in kilometres."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    d_phi, d_lambda = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(d_phi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(d_lambda / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))
