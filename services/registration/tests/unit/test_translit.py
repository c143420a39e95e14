"""Ukrainian names in Latin letters: the official 2010 form, and the key used for matching."""

from __future__ import annotations

import pytest
from aidmesh_registration.translit import name_key, to_latin

# The examples printed in the table of Cabinet of Ministers resolution No 55 (27 Jan 2010).
OFFICIAL_EXAMPLES = {
    "Алушта": "Alushta",
    "Борщагівка": "Borshchahivka",
    "Вінниця": "Vinnytsia",
    "Гадяч": "Hadiach",
    "Згорани": "Zghorany",
    "Ґалаґан": "Galagan",
    "Дон": "Don",
    "Рівне": "Rivne",
    "Єнакієве": "Yenakiieve",
    "Гайове": "Haiove",
    "Житомир": "Zhytomyr",
    "Жданов": "Zhdanov",
    "Закарпаття": "Zakarpattia",
    "Медвин": "Medvyn",
    "Іршава": "Irshava",
    "Їжакевич": "Yizhakevych",
    "Кадіївка": "Kadiivka",
    "Йосипівка": "Yosypivka",
    "Стрий": "Stryi",
    "Олексій": "Oleksii",
    "Київ": "Kyiv",
    "Лебедин": "Lebedyn",
    "Миколаїв": "Mykolaiv",
    "Ніжин": "Nizhyn",
    "Одеса": "Odesa",
    "Полтава": "Poltava",
    "Ромни": "Romny",
    "Суми": "Sumy",
    "Тетерів": "Teteriv",
    "Ужгород": "Uzhhorod",
    "Фастів": "Fastiv",
    "Харків": "Kharkiv",
    "Біла Церква": "Bila Tserkva",
    "Чернівці": "Chernivtsi",
    "Шостка": "Shostka",
    "Гоща": "Hoshcha",
    "Юрій": "Yurii",
    "Корюківка": "Koriukivka",
    "Яготин": "Yahotyn",
    "Костянтин": "Kostiantyn",
    "Знам'янка": "Znamianka",
    "Феодосія": "Feodosiia",
    "Євген": "Yevhen",
    "Гаївка": "Haivka",
    "Щербухи": "Shcherbukhy",
    "Ярошенко": "Yaroshenko",
    "Короп'є": "Koropie",
    "Ковальчук": "Kovalchuk",
}


@pytest.mark.parametrize(("cyrillic", "latin"), OFFICIAL_EXAMPLES.items())
def test_official_examples_are_transliterated_as_the_resolution_prints_them(
    cyrillic: str, latin: str
) -> None:
    assert to_latin(cyrillic) == latin


def test_letters_that_depend_on_position_are_written_differently_inside_a_word() -> None:
    assert to_latin("Яків Заяць") == "Yakiv Zaiats"
    assert to_latin("Юлія Костюк") == "Yuliia Kostiuk"
    assert to_latin("Євгенія Сергієнко") == "Yevheniia Serhiienko"
    assert to_latin("Їжак Гаї") == "Yizhak Hai"
    assert to_latin("Йосип Андрій") == "Yosyp Andrii"


def test_every_word_of_a_full_name_starts_afresh() -> None:
    assert to_latin("Коваленко Юрій Ярославович") == "Kovalenko Yurii Yaroslavovych"
    assert to_latin("Юрій-Ярослав") == "Yurii-Yaroslav"


def test_any_apostrophe_is_dropped_and_is_not_the_start_of_a_word() -> None:
    for apostrophe in "'’ʼ":
        assert to_latin(f"Знам{apostrophe}янка") == "Znamianka"
        assert to_latin(f"В{apostrophe}ячеслав") == "Viacheslav"


def test_soft_sign_is_dropped() -> None:
    assert to_latin("Ольга Кузьмич") == "Olha Kuzmych"


def test_words_in_capitals_stay_in_capitals() -> None:
    assert to_latin("ЮРІЙ ЩЕРБАК") == "YURII SHCHERBAK"
    assert to_latin("Щербак") == "Shcherbak"


def test_zgh_is_used_only_for_z_followed_by_h() -> None:
    assert to_latin("Розгон") == "Rozghon"
    assert to_latin("Згурівка") == "Zghurivka"
    assert to_latin("Жук") == "Zhuk"


def test_latin_and_other_characters_pass_through_unchanged() -> None:
    assert to_latin("Kovalenko 12-B") == "Kovalenko 12-B"
    assert to_latin("") == ""


# --- matching keys -----------------------------------------------------------------


@pytest.mark.parametrize(
    "spellings",
    [
        ["Юрій", "Yurii", "Yuriy", "Iurii", "Yury", "Jurij", "YURII"],
        ["Олександр", "Oleksandr", "Aleksandr", "Alexander", "Oleksander", "Александр"],
        ["Олексій", "Oleksii", "Oleksiy", "Aleksey", "Alexei", "Алексей"],
        ["Сергій", "Serhii", "Serhiy", "Sergii", "Sergey", "Сергей"],
        ["Андрій", "Andrii", "Andriy", "Andrey", "Андрей"],
        ["Наталія", "Nataliia", "Natalia", "Nataliya", "Natalya"],
        ["Євген", "Yevhen", "Ievgen", "Evgen", "Yevgen"],
        ["Ольга", "Olha", "Olga", "Ольга"],
        ["Хмельницький", "Khmelnytskyi", "Khmelnytskyy", "Hmelnitskiy", "Khmelnitsky"],
        ["Кравець", "Kravets", "Kravetz", "Kravec"],
        ["Ковальчук", "Kovalchuk", "Kowalczuk", "Kovaltchuk"],
        ["Шевченко", "Shevchenko", "Ševčenko", "Schevchenko"],
        ["Щербак", "Shcherbak", "Scherbak", "Szczerbak"],
        ["Марія", "Mariia", "Maria", "Mariya", "Мария"],
        ["Ганна", "Hanna", "Ganna", "Gana"],
        ["Знам'янка", "Znamianka", "Знам’янка", "Znamyanka"],
    ],
)
def test_spellings_of_one_name_share_a_key(spellings: list[str]) -> None:
    keys = {name_key(spelling) for spelling in spellings}
    assert len(keys) == 1, dict(zip(spellings, [name_key(s) for s in spellings], strict=True))


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("Коваленко", "Коваль"),
        ("Іван", "Іванна"),
        ("Петро", "Павло"),
        ("Олена", "Ольга"),
        ("Шевчук", "Шевченко"),
    ],
)
def test_different_names_keep_different_keys(one: str, other: str) -> None:
    assert name_key(one) != name_key(other)


def test_a_key_has_only_lower_case_latin_letters() -> None:
    key = name_key("  Коваленко-Шевчук  О'Брайєн 2 ")
    assert key.isascii()
    assert key.isalpha()
    assert key == key.lower()


def test_an_empty_or_letterless_name_has_an_empty_key() -> None:
    assert name_key("") == ""
    assert name_key(" - ' ") == ""
