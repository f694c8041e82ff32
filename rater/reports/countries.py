"""The country of a rate prefix: the longest ITU-T E.164 calling code it starts with.

A rate prefix is digits without the ``+`` (``33``, ``336``, ``1416``). Country calling
codes are 1 to 3 digits; North America shares ``1`` (NANP), so its Canadian and
Caribbean area codes (4 digits with the ``1``) are listed apart, and toll-free numbers
too. Pure: a table and a lookup.
"""

from __future__ import annotations

import functools

__all__ = ["country_of"]

# "code:name" separated by ";" (one entry per calling code; names in English).
_TABLE = """
1:United States;1800:Toll-free (North America);1833:Toll-free (North America);
1844:Toll-free (North America);1855:Toll-free (North America);1866:Toll-free (North America);
1877:Toll-free (North America);1888:Toll-free (North America);1900:Premium rate (North America);
1242:Bahamas;1246:Barbados;1264:Anguilla;1268:Antigua and Barbuda;1284:British Virgin Islands;
1340:US Virgin Islands;1345:Cayman Islands;1441:Bermuda;1473:Grenada;
1649:Turks and Caicos Islands;1658:Jamaica;1664:Montserrat;1670:Northern Mariana Islands;
1671:Guam;1684:American Samoa;1721:Sint Maarten;1758:Saint Lucia;1767:Dominica;
1784:Saint Vincent and the Grenadines;1787:Puerto Rico;1809:Dominican Republic;
1829:Dominican Republic;1849:Dominican Republic;1868:Trinidad and Tobago;
1869:Saint Kitts and Nevis;1876:Jamaica;1939:Puerto Rico;
20:Egypt;211:South Sudan;212:Morocco;213:Algeria;216:Tunisia;218:Libya;220:Gambia;
221:Senegal;222:Mauritania;223:Mali;224:Guinea;225:Côte d'Ivoire;226:Burkina Faso;
227:Niger;228:Togo;229:Benin;230:Mauritius;231:Liberia;232:Sierra Leone;233:Ghana;
234:Nigeria;235:Chad;236:Central African Republic;237:Cameroon;238:Cape Verde;
239:São Tomé and Príncipe;240:Equatorial Guinea;241:Gabon;242:Republic of the Congo;
243:DR Congo;244:Angola;245:Guinea-Bissau;246:Diego Garcia;247:Ascension Island;
248:Seychelles;249:Sudan;250:Rwanda;251:Ethiopia;252:Somalia;253:Djibouti;254:Kenya;
255:Tanzania;256:Uganda;257:Burundi;258:Mozambique;260:Zambia;261:Madagascar;
262:Réunion and Mayotte;263:Zimbabwe;264:Namibia;265:Malawi;266:Lesotho;267:Botswana;
268:Eswatini;269:Comoros;27:South Africa;290:Saint Helena;291:Eritrea;297:Aruba;
298:Faroe Islands;299:Greenland;
30:Greece;31:Netherlands;32:Belgium;33:France;34:Spain;350:Gibraltar;351:Portugal;
352:Luxembourg;353:Ireland;354:Iceland;355:Albania;356:Malta;357:Cyprus;358:Finland;
359:Bulgaria;36:Hungary;370:Lithuania;371:Latvia;372:Estonia;373:Moldova;374:Armenia;
375:Belarus;376:Andorra;377:Monaco;378:San Marino;379:Vatican City;380:Ukraine;
381:Serbia;382:Montenegro;383:Kosovo;385:Croatia;386:Slovenia;
387:Bosnia and Herzegovina;389:North Macedonia;39:Italy;40:Romania;41:Switzerland;
420:Czechia;421:Slovakia;423:Liechtenstein;43:Austria;44:United Kingdom;45:Denmark;
46:Sweden;47:Norway;48:Poland;49:Germany;
500:Falkland Islands;501:Belize;502:Guatemala;503:El Salvador;504:Honduras;
505:Nicaragua;506:Costa Rica;507:Panama;508:Saint Pierre and Miquelon;509:Haiti;51:Peru;
52:Mexico;53:Cuba;54:Argentina;55:Brazil;56:Chile;57:Colombia;58:Venezuela;
590:Guadeloupe;591:Bolivia;592:Guyana;593:Ecuador;594:French Guiana;595:Paraguay;
596:Martinique;597:Suriname;598:Uruguay;599:Curaçao and the Caribbean Netherlands;
60:Malaysia;61:Australia;62:Indonesia;63:Philippines;64:New Zealand;65:Singapore;
66:Thailand;670:Timor-Leste;672:Norfolk Island;673:Brunei;674:Nauru;
675:Papua New Guinea;676:Tonga;677:Solomon Islands;678:Vanuatu;679:Fiji;680:Palau;
681:Wallis and Futuna;682:Cook Islands;683:Niue;685:Samoa;686:Kiribati;
687:New Caledonia;688:Tuvalu;689:French Polynesia;690:Tokelau;691:Micronesia;
692:Marshall Islands;7:Russia;76:Kazakhstan;77:Kazakhstan;
800:International freephone;81:Japan;82:South Korea;84:Vietnam;850:North Korea;
852:Hong Kong;853:Macao;855:Cambodia;856:Laos;86:China;870:Inmarsat;
881:Global satellite networks;882:International networks;883:International networks;
880:Bangladesh;886:Taiwan;90:Turkey;91:India;92:Pakistan;93:Afghanistan;94:Sri Lanka;
95:Myanmar;960:Maldives;961:Lebanon;962:Jordan;963:Syria;964:Iraq;965:Kuwait;
966:Saudi Arabia;967:Yemen;968:Oman;970:Palestine;971:United Arab Emirates;972:Israel;
973:Bahrain;974:Qatar;975:Bhutan;976:Mongolia;977:Nepal;98:Iran;992:Tajikistan;
993:Turkmenistan;994:Azerbaijan;995:Georgia;996:Kyrgyzstan;998:Uzbekistan
"""

# NANP area codes of Canada (after the 1).
_CANADA = (
    "204 226 236 249 250 257 263 289 306 343 354 365 367 368 382 387 403 416 418 428 431 "
    "437 438 450 460 468 474 506 514 519 537 548 579 581 584 587 604 613 639 647 672 683 "
    "705 709 742 753 778 780 782 807 819 825 867 873 879 902 905 942"
)


@functools.cache
def _codes() -> dict[str, str]:
    codes: dict[str, str] = {}
    for entry in _TABLE.replace("\n", "").split(";"):
        code, _, name = entry.strip().partition(":")
        codes[code] = name
    codes.update({f"1{area}": "Canada" for area in _CANADA.split()})
    return codes


def country_of(prefix: str | None) -> str:
    """The country (or network) of a rate prefix, by its longest calling code; an empty
    string when none matches (an empty prefix, a catch-all rate, not digits).

    >>> country_of("336"), country_of("1416"), country_of("44")
    ('France', 'Canada', 'United Kingdom')
    """
    if not prefix or not prefix.isascii() or not prefix.isdigit():
        return ""
    codes = _codes()
    for length in range(min(4, len(prefix)), 0, -1):
        name = codes.get(prefix[:length])
        if name is not None:
            return name
    return ""
